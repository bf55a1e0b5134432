import JSON
import JSONRPC
import Llama
import SelfAnchor

/// The method and notification names of the selfanchor protocol (Protocol/README.md).
public enum Method {
    public static let initialize = "initialize"
    public static let initialized = "initialized"
    public static let shutdown = "shutdown"
    public static let exit = "exit"
    public static let modelLoad = "model/load"
    public static let modelInfo = "model/info"
    public static let modelUnload = "model/unload"
    public static let solve = "solve"
    public static let generate = "generate"
    public static let analyze = "analyze"
    public static let cancelRequest = "$/cancelRequest"
    public static let serverStatus = "server/status"
    /// Server → client: one decoder event of a streamed request.
    public static let event = "selfanchor/event"
    /// Server → client: model-load progress (LSP's work-done progress shape).
    public static let progress = "$/progress"
}

/// Limits that requests are checked against.
public struct RequestLimits: Sendable {
    public var maxTokens = 8192
    public var maxSteps = 64
    public init() {}
}

/// `solve` params.
public struct SolveParams: Sendable {
    public var request: SolveRequest
    public var stream: Bool

    public init(_ params: JSONValue?, limits: RequestLimits) throws(ResponseError) {
        let reader = try ParamsReader(params)
        try reader.rejectUnknown(["question", "strategy", "task", "options", "stream"])
        let question = try reader.string("question", required: true, nonEmpty: true)!
        var request = SolveRequest(question: question)
        request.strategy = try reader.choice("strategy", as: Strategy.self) ?? .selfAnchor
        request.task = try reader.choice("task", as: TaskType.self) ?? .number
        try Self.applyOptions(try reader.nested("options"), to: &request, limits: limits)
        self.request = request
        self.stream = try reader.bool("stream") ?? true
    }

    /// The `options` members of a solve, applied to a request. The keys users type in `options`, and
    /// in `selfanchor eval --variant NAME=STRATEGY:key=value,…`.
    public static let optionKeys: Set<String> = [
        "omega", "planOmega", "stepOmega", "omegaMode", "modulation", "referenceConfidence", "maxGain",
        "temperature", "topP", "topK", "seed", "maxTokens", "maxSteps", "anchors", "placeholder", "anchorSpans", "skipMaskedAbove", "calculator",
        "planning", "answerOmega",
    ]

    /// Applies a solve's `options` object to a request (members it does not have keep their values).
    public static func applyOptions(_ options: ParamsReader, to request: inout SolveRequest, limits: RequestLimits)
        throws(ResponseError)
    {
        try options.rejectUnknown(optionKeys)
        if let omega = try options.double("omega", in: -10...10) {
            request.steering.planOmega = omega
            request.steering.stepOmega = omega
            request.steering.spaOmega = omega
        }
        if let value = try options.double("planOmega", in: -10...10) { request.steering.planOmega = value }
        if let value = try options.double("stepOmega", in: -10...10) { request.steering.stepOmega = value }
        if let mode = try options.choice("omegaMode", as: SteeringOptions.Mode.self) { request.steering.mode = mode }
        if let value = try options.bool("modulation") { request.steering.modulation = value }
        if let value = try options.double("referenceConfidence", in: 0...0.99) { request.steering.referenceConfidence = value }
        if let value = try options.double("maxGain", in: 0...10) { request.steering.maximumGain = value }
        request.sampling = try Self.sampling(options, base: request.sampling)
        request.maxTokens = try options.integer("maxTokens", in: 1...limits.maxTokens) ?? request.maxTokens
        request.maxSteps = try options.integer("maxSteps", in: 1...limits.maxSteps) ?? request.maxSteps
        request.anchors = try options.strings("anchors") ?? request.anchors
        request.placeholder = try options.string("placeholder", nonEmpty: true) ?? request.placeholder
        request.anchorSpans = try options.integer("anchorSpans", in: 0...32) ?? request.anchorSpans
        request.calculator = try options.bool("calculator") ?? request.calculator
        request.planning = try options.choice("planning", as: Planning.self) ?? request.planning
        if let value = try options.double("answerOmega", in: -10...10) { request.steering.answerOmega = value }
        if options.object["skipMaskedAbove"] == .null {
            request.steering.skipMaskedAbove = nil  // off: the masked context runs on every token
        } else if let value = try options.double("skipMaskedAbove", in: 0...1) {
            request.steering.skipMaskedAbove = value
        }
    }

    static func sampling(_ options: ParamsReader, base: SamplingOptions = SamplingOptions()) throws(ResponseError) -> SamplingOptions {
        var sampling = base
        if let value = try options.double("temperature", in: 0...10) { sampling.temperature = Float(value) }
        if let value = try options.double("topP", in: 0.000001...1) { sampling.topP = Float(value) }
        if let value = try options.integer("topK", in: 0...100_000) { sampling.topK = Int32(value) }
        if let value = try options.integer("seed", in: 0...Int(UInt32.max)) { sampling.seed = UInt32(value) }
        return sampling
    }
}

/// `generate` params: messages (or a prompt), anchors and ω.
public struct GenerateParams: Sendable {
    public var request: GenerateRequest
    public var stream: Bool

    public init(_ params: JSONValue?, limits: RequestLimits) throws(ResponseError) {
        let reader = try ParamsReader(params)
        try reader.rejectUnknown(["messages", "prompt", "anchors", "options", "stream"])
        var messages: [ChatMessage] = []
        if let list = try reader.array("messages") {
            for (index, element) in list.enumerated() {
                let message = try ParamsReader(element, path: "params.messages[\(index)]")
                try message.rejectUnknown(["role", "content"])
                let role = try message.string("role", required: true, nonEmpty: true)!
                guard ["system", "user", "assistant"].contains(role) else {
                    throw ParamsReader.invalid("params.messages[\(index)].role", "must be \"system\", \"user\" or \"assistant\", got \"\(role)\"")
                }
                messages.append(ChatMessage(role: role, content: try message.string("content", required: true)!))
            }
        }
        if let prompt = try reader.string("prompt") {
            guard messages.isEmpty else { throw ParamsReader.invalid("params.prompt", "give either messages or prompt, not both") }
            messages = [.user(prompt)]
        }
        guard !messages.isEmpty else { throw ParamsReader.invalid("params.messages", "required (or params.prompt)") }
        var request = GenerateRequest(messages: messages, anchors: try reader.strings("anchors") ?? [])
        let options = try reader.nested("options")
        try options.rejectUnknown(["omega", "modulation", "temperature", "topP", "topK", "seed", "maxTokens", "placeholder"])
        request.omega = try options.double("omega", in: -10...10) ?? request.omega
        request.modulation = try options.bool("modulation") ?? false
        request.sampling = try SolveParams.sampling(options)
        request.maxTokens = try options.integer("maxTokens", in: 1...limits.maxTokens) ?? request.maxTokens
        request.placeholder = try options.string("placeholder", nonEmpty: true) ?? request.placeholder
        self.request = request
        self.stream = try reader.bool("stream") ?? true
    }
}

/// `model/load` params.
public struct ModelLoadParams: Sendable {
    /// A catalog name or alias ("default", "fast", "test", "qwen-1.5b", …) or a GGUF path.
    public var model: String
    public var contextSize: Int?
    public var threads: Int?
    public var gpuLayers: Int?

    /// Unset fields fall back to the server's options.
    public init(model: String, contextSize: Int? = nil, threads: Int? = nil, gpuLayers: Int? = nil) {
        self.model = model
        self.contextSize = contextSize
        self.threads = threads
        self.gpuLayers = gpuLayers
    }

    public init(_ params: JSONValue?) throws(ResponseError) {
        let reader = try ParamsReader(params)
        try reader.rejectUnknown(["model", "contextSize", "threads", "gpuLayers"])
        model = try reader.string("model", required: true, nonEmpty: true)!
        contextSize = try reader.integer("contextSize", in: 256...131_072)
        threads = try reader.integer("threads", in: 0...256)
        gpuLayers = try reader.integer("gpuLayers", in: -1...1000)
    }
}

/// `$/cancelRequest` params.
public struct CancelParams: Sendable {
    public var id: RequestID

    public init(_ params: JSONValue?) throws(ResponseError) {
        let reader = try ParamsReader(params)
        guard let raw = reader.object["id"], let id = RequestID(raw) else {
            throw ParamsReader.invalid("params.id", "required (the id of the request to cancel: a string or an integer)")
        }
        self.id = id
    }
}

/// What `initialize`, `model/info` and `model/load` say about a loaded model.
public struct ModelDescription: Sendable {
    public var name: String
    public var path: String
    public var model: LlamaModel
    public var contextSize: Int

    public init(name: String, path: String, model: LlamaModel, contextSize: Int) {
        self.name = name
        self.path = path
        self.model = model
        self.contextSize = contextSize
    }

    public var jsonValue: JSONValue {
        [
            "name": .string(name), "path": .string(path), "description": .string(model.description),
            "parameters": .integer(Int64(model.parameterCount)), "sizeBytes": .integer(Int64(model.sizeBytes)),
            "contextSize": .int(contextSize), "trainContextLength": .int(model.trainingContextLength),
            "layers": .int(model.layerCount), "vocabularySize": .int(model.vocabularySize),
        ]
    }
}
