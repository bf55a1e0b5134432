import JSON
import JSONRPC

// The wire shapes of `solve`: its params and options, its result, and the events streamed while it
// runs. No I/O and no decoder types here: the server maps these to and from the decoder's own types
// (module WireMapping). Keys are camelCase, except inside `timings`, which keeps llama-server's keys.

/// The strategies a request may name (the decoder's `Strategy`, by the names on the wire).
public enum StrategyName: String, Sendable, CaseIterable {
    case plain, cot, psPlus = "ps+", re2, spa, selfAnchor = "self-anchor", attentionAnchor = "attention-anchor"
}

/// How the answer is read: the decoder's `TaskType` on the wire.
public enum TaskName: String, Sendable, CaseIterable {
    case number, choice, yesno, math, text
}

/// Self-Anchor's layout on the wire.
public enum PlanningName: String, Sendable, CaseIterable {
    case interleaved, upfront
}

/// ω's confidence scaling on the wire.
public enum OmegaModeName: String, Sendable, CaseIterable {
    case adaptive, fixed
}

/// How the masked context is decoded (`SteeringOptions.MaskedPass`) on the wire.
public enum MaskedPassName: String, Sendable, CaseIterable {
    case every, speculative, adaptive
}

/// `solve` params.
public struct SolveParams: Sendable, Equatable {
    public var question: String
    public var strategy: StrategyName = .selfAnchor
    public var task: TaskName = .number
    public var stream = true
    public var options = SolveOptions()

    public init(question: String) { self.question = question }

    public init(_ params: JSONValue?, limits: RequestLimits) throws(ResponseError) {
        let reader = try ParamsReader(params)
        try reader.rejectUnknown(["question", "strategy", "task", "options", "stream"])
        question = try reader.string("question", required: true, nonEmpty: true)!
        strategy = try reader.choice("strategy", as: StrategyName.self) ?? .selfAnchor
        task = try reader.choice("task", as: TaskName.self) ?? .number
        options = try SolveOptions(reader.nested("options"), limits: limits)
        stream = try reader.bool("stream") ?? true
    }
}

/// A solve's `options`: each unset member keeps the decoder's default. Also what `selfanchor eval
/// --variant NAME=STRATEGY:key=value,…` reads, with the same names and checks.
public struct SolveOptions: Sendable, Equatable {
    public var omega: Double?
    public var planOmega: Double?
    public var stepOmega: Double?
    public var answerOmega: Double?
    public var resultOmega: Double?
    public var omegaMode: OmegaModeName?
    public var modulation: Bool?
    public var referenceConfidence: Double?
    public var maxGain: Double?
    public var plausibility: Double?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var seed: Int?
    public var maxTokens: Int?
    public var maxSteps: Int?
    public var anchors: [String]?
    public var placeholder: String?
    public var anchorSpans: Int?
    /// `.some(nil)`: `null` on the wire, the masked context on every token.
    public var skipMaskedAbove: Double??
    /// `every`, `speculative` or `adaptive` (`SteeringOptions.MaskedPass`).
    public var maskedPass: MaskedPassName?
    public var planning: PlanningName?
    public var calculator: Bool?

    public static let keys: Set<String> = [
        "omega", "planOmega", "stepOmega", "answerOmega", "resultOmega", "omegaMode", "modulation", "referenceConfidence", "maxGain",
        "plausibility", "temperature", "topP", "topK", "seed", "maxTokens", "maxSteps", "anchors", "placeholder", "anchorSpans",
        "skipMaskedAbove", "maskedPass", "planning", "calculator",
    ]

    public init() {}

    public init(_ options: ParamsReader, limits: RequestLimits) throws(ResponseError) {
        try options.rejectUnknown(Self.keys)
        omega = try options.double("omega", in: -10...10)
        planOmega = try options.double("planOmega", in: -10...10)
        stepOmega = try options.double("stepOmega", in: -10...10)
        answerOmega = try options.double("answerOmega", in: -10...10)
        resultOmega = try options.double("resultOmega", in: -10...10)
        omegaMode = try options.choice("omegaMode", as: OmegaModeName.self)
        modulation = try options.bool("modulation")
        referenceConfidence = try options.double("referenceConfidence", in: 0...0.99)
        maxGain = try options.double("maxGain", in: 0...10)
        plausibility = try options.double("plausibility", in: 0...1)
        temperature = try options.double("temperature", in: 0...10)
        topP = try options.double("topP", in: 0.000001...1)
        topK = try options.integer("topK", in: 0...100_000)
        seed = try options.integer("seed", in: 0...Int(UInt32.max))
        maxTokens = try options.integer("maxTokens", in: 1...limits.maxTokens)
        maxSteps = try options.integer("maxSteps", in: 1...limits.maxSteps)
        anchors = try options.strings("anchors")
        placeholder = try options.string("placeholder", nonEmpty: true)
        anchorSpans = try options.integer("anchorSpans", in: 0...32)
        if options.object["skipMaskedAbove"] == .null {
            skipMaskedAbove = .some(nil)
        } else if let value = try options.double("skipMaskedAbove", in: 0...1) {
            skipMaskedAbove = value
        }
        maskedPass = try options.choice("maskedPass", as: MaskedPassName.self)
        planning = try options.choice("planning", as: PlanningName.self)
        calculator = try options.bool("calculator")
    }
}

// MARK: Result

/// A plan line or a reasoning step as the wire carries it (in `plan`/`reason` events and the result).
public struct LineMessage: Sendable, Equatable {
    public var index: Int
    public var text: String
    public var omega: Double
    public var confidence: Double?
    public var steeringConfidence: Double?
    public var tokens: Int
    /// `attention-anchor`: the spans the line was steered toward (omitted when empty).
    public var anchors: [String]

    public init(index: Int, text: String, omega: Double, confidence: Double?, steeringConfidence: Double?, tokens: Int,
                anchors: [String] = [])
    {
        self.index = index
        self.text = text
        self.omega = omega
        self.confidence = confidence
        self.steeringConfidence = steeringConfidence
        self.tokens = tokens
        self.anchors = anchors
    }

    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "index": .int(index), "text": .string(text), "omega": .double(omega),
            "confidence": confidence.map(JSONValue.double) ?? .null,
            "steeringConfidence": steeringConfidence.map(JSONValue.double) ?? .null, "tokens": .int(tokens),
        ]
        if !anchors.isEmpty { object["anchors"] = .array(anchors.map { .string($0) }) }
        return .object(object)
    }
}

/// The answer line and what was read out of it.
public struct AnswerMessage: Sendable, Equatable {
    public var text: String
    public var extracted: String?
    public var task: String

    public init(text: String, extracted: String?, task: String) {
        self.text = text
        self.extracted = extracted
        self.task = task
    }

    public var jsonValue: JSONValue {
        ["text": .string(text), "extracted": extracted.map(JSONValue.string) ?? .null, "task": .string(task)]
    }
}

/// Counts and times. The one object that keeps snake_case keys: llama-server's (`prompt_n`,
/// `predicted_per_second`, …), which tools that read llama-server's timings already know.
public struct TimingsMessage: Sendable, Equatable {
    public var promptN = 0
    public var promptDecodedN = 0
    public var promptMs = 0.0
    public var predictedN = 0
    public var predictedMs = 0.0
    public var insertedN = 0
    public var maskedN = 0
    public var maskedSkippedN = 0
    public var draftsN = 0
    public var draftedN = 0
    public var draftAcceptedN = 0
    public var calculationsN = 0
    public var stopReason = "finished"

    public init() {}

    public var jsonValue: JSONValue {
        [
            "prompt_n": .int(promptN), "prompt_decoded_n": .int(promptDecodedN), "prompt_ms": .double(promptMs),
            "prompt_per_second": .double(promptMs > 0 ? Double(promptDecodedN) * 1000 / promptMs : 0),
            "predicted_n": .int(predictedN), "predicted_ms": .double(predictedMs),
            "predicted_per_second": .double(predictedMs > 0 ? Double(predictedN) * 1000 / predictedMs : 0),
            "inserted_n": .int(insertedN), "masked_n": .int(maskedN), "masked_skipped_n": .int(maskedSkippedN),
            "drafts_n": .int(draftsN), "drafted_n": .int(draftedN), "draft_accepted_n": .int(draftAcceptedN),
            "calculations_n": .int(calculationsN), "stop_reason": .string(stopReason),
        ]
    }
}

/// The whole outcome of a solve (or a generation): what was streamed, gathered.
public struct SolveResultMessage: Sendable, Equatable {
    public var strategy: String
    public var question: String
    public var text: String
    public var steps: [(plan: LineMessage?, reason: LineMessage?)]
    public var answer: AnswerMessage?
    public var timings: TimingsMessage
    /// `self-anchor` and `attention-anchor`: the layout (omitted otherwise).
    public var planning: String?

    public init(strategy: String, question: String, text: String, steps: [(plan: LineMessage?, reason: LineMessage?)],
                answer: AnswerMessage?, timings: TimingsMessage, planning: String?)
    {
        self.strategy = strategy
        self.question = question
        self.text = text
        self.steps = steps
        self.answer = answer
        self.timings = timings
        self.planning = planning
    }

    public static func == (a: Self, b: Self) -> Bool { a.jsonValue == b.jsonValue }

    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "strategy": .string(strategy), "question": .string(question), "text": .string(text),
            "steps": .array(steps.map { step in
                ["plan": step.plan?.jsonValue ?? .null, "reason": step.reason?.jsonValue ?? .null]
            }),
            "answer": answer?.jsonValue ?? .null, "timings": timings.jsonValue,
        ]
        if let planning { object["planning"] = .string(planning) }
        return .object(object)
    }
}

// MARK: Events

/// What a run says as it goes: `selfanchor/event` notifications, and `selfanchor solve --json` lines.
public enum EventMessage: Sendable, Equatable {
    case start(strategy: String, model: String, promptTokens: Int, maskedPromptTokens: Int)
    /// New text of a section (`plan`, `reason`, `answer`, or `text` for unstructured strategies).
    case delta(section: String, index: Int, text: String)
    case plan(LineMessage)
    case reason(LineMessage)
    case calculation(expression: String, value: String)
    case answer(AnswerMessage)
    case end(TimingsMessage)

    /// The event's name: start, plan_delta, reason_delta, answer_delta, text_delta, plan, reason,
    /// calculation, answer, end.
    public var name: String {
        switch self {
        case .start: return "start"
        case .delta(let section, _, _): return section + "_delta"
        case .plan: return "plan"
        case .reason: return "reason"
        case .calculation: return "calculation"
        case .answer: return "answer"
        case .end: return "end"
        }
    }

    public var jsonValue: JSONValue {
        var object: JSONObject = ["event": .string(name)]
        switch self {
        case .start(let strategy, let model, let promptTokens, let maskedPromptTokens):
            object["strategy"] = .string(strategy)
            object["model"] = .string(model)
            object["promptTokens"] = .int(promptTokens)
            object["maskedPromptTokens"] = .int(maskedPromptTokens)
        case .delta(_, let index, let text):
            object["index"] = .int(index)
            object["text"] = .string(text)
        case .plan(let line), .reason(let line):
            for (key, value) in line.jsonValue.objectValue ?? [:] { object[key] = value }
        case .calculation(let expression, let value):
            object["expression"] = .string(expression)
            object["value"] = .string(value)
        case .answer(let answer):
            for (key, value) in answer.jsonValue.objectValue ?? [:] { object[key] = value }
        case .end(let timings):
            object["timings"] = timings.jsonValue
        }
        return .object(object)
    }
}
