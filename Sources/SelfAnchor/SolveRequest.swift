import Llama

/// Everything one solve needs: the question, the strategy and its knobs.
public struct SolveRequest: Sendable {
    public var question: String
    public var strategy: Strategy = .selfAnchor
    /// How the final answer is read (and which answer format the prompts ask for).
    public var task: TaskType = .number
    public var steering = SteeringOptions()
    public var sampling = SamplingOptions()
    /// The most tokens the model may generate (headers the decoder inserts do not count).
    public var maxTokens: Int = 768
    /// Self-Anchor's layout: plans interleaved with steps, or the whole plan first; nil: the task's
    /// default (`Planning.default(for:)`).
    public var planning: Planning? = nil
    /// The most plan/step pairs before the decoder asks for the answer.
    public var maxSteps: Int = 10
    /// `spa` only: strings of the prompt to steer toward (default: the whole question).
    public var anchors: [String] = []
    /// What replaces anchor text in the masked context.
    public var placeholder: String = MaskedPrompt.defaultPlaceholder
    /// `attention-anchor` only: how many highest-FAI spans of the generation join the question as anchors.
    public var anchorSpans: Int = 3
    /// Exact arithmetic: when the model writes an arithmetic expression and `=`, the decoder writes the
    /// value (`Calculator`), and the model goes on from it; nil: the task's default
    /// (`Calculator.isDefault(for:)`).
    public var calculator: Bool? = nil
    /// Whether the calculator is on: as asked, else the task's default.
    public var usesCalculator: Bool { calculator ?? Calculator.isDefault(for: task) }

    public init(question: String, strategy: Strategy = .selfAnchor, task: TaskType = .number) {
        self.question = question
        self.strategy = strategy
        self.task = task
    }
}

/// How the Self-Anchor decoder lays out plans and steps. The paper's text allows both readings.
public enum Planning: String, Sendable, CaseIterable {
    /// `Plan 1:`, `Step 1:`, `Plan 2:`, …: each plan made after the steps before it.
    case interleaved
    /// `Plan:` with numbered items, then `Step 1:`, `Step 2:`, … carrying them out in order.
    case upfront

    /// The layout that answered the most on the task's dev split (README, "Results on the dev splits"):
    /// yes/no questions interleaved (strategyqa-dev: a plan written after the step before it ends on a
    /// verdict, where a whole plan of lookups ends on a fact and the answer line guesses "yes"); number,
    /// math and choice tasks upfront.
    public static func `default`(for task: TaskType) -> Planning {
        task == .yesno ? .interleaved : .upfront
    }
}

/// General SPA-steered generation for any conversation (code, prose), not only problem solving.
public struct GenerateRequest: Sendable {
    public var messages: [ChatMessage]
    /// Strings occurring in the messages to steer toward; none means unsteered generation.
    public var anchors: [String] = []
    public var omega: Double = 1.3
    public var modulation: Bool = false
    public var sampling = SamplingOptions()
    public var maxTokens: Int = 512
    public var placeholder: String = MaskedPrompt.defaultPlaceholder
    /// How the masked context is decoded (`SteeringOptions.maskedPass`); every token unless asked.
    public var maskedPass: SteeringOptions.MaskedPass = .every
    public var skipMaskedAbove: Double = SteeringOptions.defaultSkipMaskedAbove

    public init(messages: [ChatMessage], anchors: [String] = []) {
        self.messages = messages
        self.anchors = anchors
    }
}
