import JSON
import JSONRPC

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

/// The protocol's version, reported by `initialize`. 2: keys in camelCase (timings excepted); 1 had
/// snake_case keys in events, results and the analysis.
public let protocolVersion = 2

/// Limits that requests are checked against.
public struct RequestLimits: Sendable {
    public var maxTokens = 8192
    public var maxSteps = 64
    public init() {}
}

/// `model/load` params.
public struct ModelLoadParams: Sendable, Equatable {
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

/// What `initialize`, `model/info`, `model/load` and `server/status` say about a loaded model.
public struct ModelDescription: Sendable, Equatable {
    public var name: String
    public var path: String
    public var description: String
    public var parameters: Int
    public var sizeBytes: Int
    public var contextSize: Int
    public var trainContextLength: Int
    public var layers: Int
    public var vocabularySize: Int

    public init(name: String, path: String, description: String, parameters: Int, sizeBytes: Int, contextSize: Int,
                trainContextLength: Int, layers: Int, vocabularySize: Int)
    {
        self.name = name
        self.path = path
        self.description = description
        self.parameters = parameters
        self.sizeBytes = sizeBytes
        self.contextSize = contextSize
        self.trainContextLength = trainContextLength
        self.layers = layers
        self.vocabularySize = vocabularySize
    }

    public var jsonValue: JSONValue {
        [
            "name": .string(name), "path": .string(path), "description": .string(description),
            "parameters": .int(parameters), "sizeBytes": .int(sizeBytes), "contextSize": .int(contextSize),
            "trainContextLength": .int(trainContextLength), "layers": .int(layers), "vocabularySize": .int(vocabularySize),
        ]
    }
}

/// The `initialize` result.
public struct InitializeResult: Sendable {
    public var serverName: String
    public var serverVersion: String
    public var model: ModelDescription?
    public var strategies: [String]
    public var tasks: [String]
    public var methods: [String]
    public var notifications: [String]
    public var maxMessageBytes: Int
    public var maxQueue: Int
    public var limits: RequestLimits
    public var contextSize: Int
    public var parallel: Int

    public init(serverName: String, serverVersion: String, model: ModelDescription?, strategies: [String], tasks: [String],
                methods: [String], notifications: [String], maxMessageBytes: Int, maxQueue: Int, limits: RequestLimits,
                contextSize: Int, parallel: Int)
    {
        self.serverName = serverName
        self.serverVersion = serverVersion
        self.model = model
        self.strategies = strategies
        self.tasks = tasks
        self.methods = methods
        self.notifications = notifications
        self.maxMessageBytes = maxMessageBytes
        self.maxQueue = maxQueue
        self.limits = limits
        self.contextSize = contextSize
        self.parallel = parallel
    }

    public var jsonValue: JSONValue {
        [
            "serverInfo": ["name": .string(serverName), "version": .string(serverVersion)],
            "protocolVersion": .int(protocolVersion),
            "model": model?.jsonValue ?? .null,
            "capabilities": [
                "strategies": .array(strategies.map(JSONValue.string)),
                "tasks": .array(tasks.map(JSONValue.string)),
                "framings": ["lsp", "ndjson"],
                "methods": .array(methods.map(JSONValue.string)),
                "notifications": .array(notifications.map(JSONValue.string)),
                "limits": [
                    "maxMessageBytes": .int(maxMessageBytes), "maxQueue": .int(maxQueue),
                    "maxTokens": .int(limits.maxTokens), "maxSteps": .int(limits.maxSteps),
                    "contextSize": .int(contextSize), "parallel": .int(parallel),
                ],
            ],
        ]
    }
}

/// The `model/unload` result: whether a model was loaded.
public struct ModelUnloadResult: Sendable, Equatable {
    public var unloaded: Bool

    public init(unloaded: Bool) { self.unloaded = unloaded }

    public var jsonValue: JSONValue { ["unloaded": .bool(unloaded)] }
}

/// The `server/status` result: what the daemon holds and is doing, for a status line or a health check.
public struct ServerStatusResult: Sendable, Equatable {
    /// One request not yet answered.
    public struct Request: Sendable, Equatable {
        public var id: JSONValue
        public var method: String
        public var running: Bool
        public var elapsedMs: Int

        public init(id: JSONValue, method: String, running: Bool, elapsedMs: Int) {
            self.id = id
            self.method = method
            self.running = running
            self.elapsedMs = elapsedMs
        }
    }

    public var model: ModelDescription?
    public var loading: Bool
    public var waiting: Int
    public var maxQueue: Int
    public var parallel: Int
    public var inFlight: [Request]
    public var served: Int
    public var rssBytes: Int
    /// The KV cache and the model file's size; nil while no model is loaded.
    public var kvCacheBytes: Int?
    public var modelBytes: Int?
    public var uptimeMs: Int

    public init(model: ModelDescription?, loading: Bool, waiting: Int, maxQueue: Int, parallel: Int, inFlight: [Request],
                served: Int, rssBytes: Int, kvCacheBytes: Int?, modelBytes: Int?, uptimeMs: Int)
    {
        self.model = model
        self.loading = loading
        self.waiting = waiting
        self.maxQueue = maxQueue
        self.parallel = parallel
        self.inFlight = inFlight
        self.served = served
        self.rssBytes = rssBytes
        self.kvCacheBytes = kvCacheBytes
        self.modelBytes = modelBytes
        self.uptimeMs = uptimeMs
    }

    public var jsonValue: JSONValue {
        var memory: JSONObject = ["rssBytes": .int(rssBytes)]
        if let kvCacheBytes { memory["kvCacheBytes"] = .int(kvCacheBytes) }
        if let modelBytes { memory["modelBytes"] = .int(modelBytes) }
        return [
            "model": model?.jsonValue ?? .null, "loading": .bool(loading),
            "queue": ["waiting": .int(waiting), "max": .int(maxQueue), "parallel": .int(parallel)],
            "inFlight": .array(inFlight.map { request in
                [
                    "id": request.id, "method": .string(request.method),
                    "state": .string(request.running ? "running" : "queued"), "elapsedMs": .int(request.elapsedMs),
                ]
            }),
            "served": .int(served), "memory": .object(memory), "uptimeMs": .int(uptimeMs),
        ]
    }
}
