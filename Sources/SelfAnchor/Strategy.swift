import Llama

/// A way of prompting and decoding, selectable per request. The first four are the baselines users
/// compare Self-Anchor against; `spa` steers any prompt toward caller-given anchors.
public enum Strategy: String, Sendable, CaseIterable {
    /// The question alone.
    case plain
    /// Zero-shot chain of thought: "Let's think step by step."
    case cot
    /// Plan-and-Solve+ (Wang et al., 2023), the authors' trigger.
    case psPlus = "ps+"
    /// Re-Reading (Xu et al., 2024): the question twice, then the CoT trigger.
    case re2
    /// Selective Prompt Anchoring on a prompt with caller-given anchor strings.
    case spa
    /// Alternating plan and reasoning lines, each steered toward its own anchors.
    case selfAnchor = "self-anchor"
    /// Self-Anchor's line format, with anchors chosen from attention: the question plus the spans of the
    /// generation so far with the highest future attention influence (FAI).
    case attentionAnchor = "attention-anchor"

    /// Whether the decoder runs a masked context beside the real one.
    public var isSteered: Bool { self == .spa || self == .selfAnchor || self == .attentionAnchor }

}

/// The exact prompt text of each strategy.
public enum Prompts {
    public static let cotTrigger = "Let's think step by step."
    public static let psPlusTrigger =
        "Let's first understand the problem, extract relevant variables and their corresponding numerals, and devise a plan. Then, let's carry out the plan, calculate intermediate variables (pay attention to correct numeral calculation and commonsense), solve the problem step by step, and show the answer."
    public static let reReadPrefix = "Read the question again: "

    /// The system prompt of the Self-Anchor decoder: the layout it parses and steers.
    public static func selfAnchorSystem(task: TaskType, planning: Planning = .interleaved) -> String {
        SelfAnchorPrompt.system(task: task, planning: planning)
    }

    /// The real and masked conversations of the Self-Anchor decoder: the masked one has the whole
    /// question replaced by the placeholder, the system prompt (and so the template) unchanged.
    public static func selfAnchorMessages(question: String, task: TaskType, planning: Planning = .interleaved,
                                          placeholder: String) -> (real: [ChatMessage], masked: [ChatMessage])
    {
        let real = conversation(strategy: .selfAnchor, question: question, task: task, planning: planning).messages
        let masked = real.map { $0.role == "user" ? ChatMessage.user($0.content.replacing(question, with: placeholder)) : $0 }
        return (real, masked)
    }

    /// The conversation and assistant prefix a strategy's real (unmasked) context starts from: what the
    /// decoder sends, and what `analyze` rebuilds for a saved solve.
    public static func conversation(strategy: Strategy, question: String, task: TaskType, planning: Planning = .interleaved)
        -> (messages: [ChatMessage], assistantPrefix: String)
    {
        switch strategy {
        case .selfAnchor, .attentionAnchor:
            return ([.system(selfAnchorSystem(task: task, planning: planning)), .user(userMessage(strategy: strategy, question: question))], "")
        case .plain, .cot, .psPlus, .re2, .spa:
            return ([.system(baselineSystem(task: task)), .user(userMessage(strategy: strategy, question: question))],
                    assistantPrefix(strategy: strategy == .spa ? .cot : strategy))
        }
    }

    /// The system prompt of the baselines: only how to state the answer.
    public static func baselineSystem(task: TaskType) -> String {
        "You are a careful problem solver. \(task.answerInstruction)"
    }

    /// The user message of a strategy for a question.
    public static func userMessage(strategy: Strategy, question: String) -> String {
        switch strategy {
        case .re2: return "Q: \(question)\n\(reReadPrefix)\(question)"
        case .cot, .psPlus, .spa: return "Q: \(question)"
        case .plain, .selfAnchor, .attentionAnchor: return question
        }
    }

    /// Text the assistant's turn starts with (the zero-shot trigger, as its authors placed it after "A:").
    public static func assistantPrefix(strategy: Strategy) -> String {
        switch strategy {
        case .cot, .re2: return "A: \(cotTrigger)"
        case .psPlus: return "A: \(psPlusTrigger)"
        case .plain, .spa, .selfAnchor, .attentionAnchor: return ""
        }
    }
}
