import JSON
import JSONRPC

/// One message of a `generate` conversation.
public struct ConversationMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// `generate` params: messages (or a prompt), anchors and ω. Its result and events have the shapes of
/// a solve's (`SolveResultMessage`, `EventMessage`).
public struct GenerateParams: Sendable, Equatable {
    public var messages: [ConversationMessage]
    public var anchors: [String]
    public var omega: Double?
    public var modulation: Bool?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var seed: Int?
    public var maxTokens: Int?
    public var placeholder: String?
    public var stream: Bool

    public init(_ params: JSONValue?, limits: RequestLimits) throws(ResponseError) {
        let reader = try ParamsReader(params)
        try reader.rejectUnknown(["messages", "prompt", "anchors", "options", "stream"])
        var messages: [ConversationMessage] = []
        if let list = try reader.array("messages") {
            for (index, element) in list.enumerated() {
                let message = try ParamsReader(element, path: "params.messages[\(index)]")
                try message.rejectUnknown(["role", "content"])
                let role = try message.string("role", required: true, nonEmpty: true)!
                guard ["system", "user", "assistant"].contains(role) else {
                    throw ParamsReader.invalid("params.messages[\(index)].role", "must be \"system\", \"user\" or \"assistant\", got \"\(role)\"")
                }
                messages.append(ConversationMessage(role: role, content: try message.string("content", required: true)!))
            }
        }
        if let prompt = try reader.string("prompt") {
            guard messages.isEmpty else { throw ParamsReader.invalid("params.prompt", "give either messages or prompt, not both") }
            messages = [ConversationMessage(role: "user", content: prompt)]
        }
        guard !messages.isEmpty else { throw ParamsReader.invalid("params.messages", "required (or params.prompt)") }
        self.messages = messages
        anchors = try reader.strings("anchors") ?? []
        let options = try reader.nested("options")
        try options.rejectUnknown(["omega", "modulation", "temperature", "topP", "topK", "seed", "maxTokens", "placeholder"])
        omega = try options.double("omega", in: -10...10)
        modulation = try options.bool("modulation")
        temperature = try options.double("temperature", in: 0...10)
        topP = try options.double("topP", in: 0.000001...1)
        topK = try options.integer("topK", in: 0...100_000)
        seed = try options.integer("seed", in: 0...Int(UInt32.max))
        maxTokens = try options.integer("maxTokens", in: 1...limits.maxTokens)
        placeholder = try options.string("placeholder", nonEmpty: true)
        stream = try reader.bool("stream") ?? true
    }
}
