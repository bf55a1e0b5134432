/// One thing the decoder reports while it runs, in order: `start`, deltas and completed
/// plans/steps, `answer`, `end`. Streaming clients render these as they arrive.
public enum DecoderEvent: Sendable, Equatable {
    case start(StartInfo)
    /// Newly generated text of a section. Always whole UTF-8 characters.
    case delta(section: Section, index: Int, text: String)
    /// A completed plan line.
    case plan(StepRecord)
    /// A completed reasoning step.
    case reason(StepRecord)
    case answer(AnswerRecord)
    /// The calculator wrote the value of the expression before `=` (the value also comes as a delta).
    case calculation(Calculator.Calculation)
    case end(Timings)

    /// Which part of the output a delta belongs to.
    public enum Section: String, Sendable {
        case plan, reason, answer
        /// Free text of unstructured strategies (plain, cot, ps+, re2, spa, generate).
        case text
    }
}

/// What the `start` event says about the run.
public struct StartInfo: Sendable, Equatable {
    public var strategy: String
    public var model: String
    public var promptTokens: Int
    /// Tokens of the masked context's prompt (0 when unsteered).
    public var maskedPromptTokens: Int
}

/// A completed plan line or reasoning step.
public struct StepRecord: Sendable, Equatable {
    /// 1-based: plan k and step k belong together.
    public var index: Int
    public var text: String
    /// The ω the step was generated with (1 for unsteered).
    public var omega: Double
    /// The harmonic mean of the real-distribution probabilities of this step's generated tokens.
    public var confidence: Double?
    /// The confidence that set ω (the previous step's), nil for the first step.
    public var steeringConfidence: Double?
    public var tokens: Int
    /// `attention-anchor` only: the generated spans (besides the question) the line was steered toward.
    public var anchors: [String] = []
}

/// The final answer line and what was extracted from it.
public struct AnswerRecord: Sendable, Equatable {
    public var text: String
    public var extracted: String?
    public var task: TaskType
}

/// Why generation stopped.
public enum StopReason: String, Sendable {
    /// The answer line (self-anchor) or an end-of-generation token.
    case finished
    case maxTokens = "max_tokens"
    case maxSteps = "max_steps"
    case contextFull = "context_full"
    case cancelled
}

/// Counts and times, with llama-server's key names where they exist.
public struct Timings: Sendable, Equatable {
    /// Prompt tokens of the real context (cached ones included).
    public var promptN = 0
    /// Prompt tokens actually decoded for this request (the rest came from the cache).
    public var promptDecodedN = 0
    public var promptMs = 0.0
    /// Tokens the model generated (sampled); headers inserted by the decoder excluded.
    public var predictedN = 0
    public var predictedMs = 0.0
    /// Tokens the decoder inserted (Plan/Step/Answer headers).
    public var insertedN = 0
    /// Tokens decoded for masked contexts, prompt and catch-up included.
    public var maskedN = 0
    /// Steered tokens chosen without the masked context (adaptive masked pass).
    public var maskedSkippedN = 0
    /// Speculative masked pass: drafts verified, tokens drafted, and drafted tokens the steered choice
    /// accepted (acceptance rate = accepted / drafted; mean accepted length = accepted / drafts).
    public var draftsN = 0
    public var draftedN = 0
    public var draftAcceptedN = 0
    /// Values the calculator wrote (their tokens are counted in `insertedN`).
    public var calculationsN = 0
    public var stopReason: StopReason = .finished

    public init() {}

    public var predictedPerSecond: Double { predictedMs > 0 ? Double(predictedN) * 1000 / predictedMs : 0 }
    public var promptPerSecond: Double { promptMs > 0 ? Double(promptDecodedN) * 1000 / promptMs : 0 }
}

/// A plan and the reasoning step that carries it out.
public struct SolveStep: Sendable, Equatable {
    public var plan: StepRecord?
    public var reason: StepRecord?
}

/// The complete outcome of a solve: what was streamed, gathered.
public struct SolveResult: Sendable, Equatable {
    public var strategy: String
    public var question: String
    /// Everything the model produced, headers included, as one text.
    public var text: String
    public var steps: [SolveStep]
    public var answer: AnswerRecord?
    public var timings: Timings
    /// `self-anchor` and `attention-anchor`: the layout the plans and steps were written in.
    public var planning: Planning? = nil
}
