import Dispatch
import JSON
import JSONRPC
import Llama
import Logging
import AttentionAnalysis
import SelfAnchor
import SelfAnchorProtocol
import Synchronization
import WireMapping

#if canImport(Glibc)
    import Glibc
#endif

/// How the daemon runs: which model it loads at start, its limits.
public struct ServerOptions: Sendable {
    /// Loaded before the first request is served; nil starts without a model.
    public var initialModel: String? = "default"
    public var contextSize = 4096
    public var threads = 0
    /// Every decode on `threads` threads (false: generation may drop to half of them while that is
    /// faster, `ThreadGovernor`).
    public var fixedThreads = false
    public var gpuLayers = 0
    /// Map the weights instead of reading them into memory. Off by default: a mapped file that is
    /// truncated or rewritten while loaded kills the process with SIGBUS on the next decode.
    public var useMmap = false
    /// Requests waiting for a free slot, at most.
    public var maxQueue = 16
    /// `solve`/`generate` requests decoding at once (continuously batched); more wait in the queue.
    public var parallel = 4
    public var maxMessageBytes = 16 << 20
    public var limits = RequestLimits()
    public init() {}
}

/// The selfanchor daemon's dispatcher: it receives decoded messages, answers lifecycle and control
/// requests at once, and queues `solve`/`generate`/`analyze`. Up to `parallel` solves and generations
/// run at once, as tasks whose decoders the engine's scheduler steps together, one batch per round; `analyze`, model swaps and
/// `shutdown` wait for those to finish and run alone. It does no I/O itself:
/// every outgoing message goes through `output`, so the same server runs behind stdio or in-process.
public final class Server: MessageReceiver, Sendable {
    public static let name = "selfanchor"
    public static let version = "0.1.0"

    private let options: ServerOptions
    private let output: @Sendable (Message) -> Void
    private let exitHandler: @Sendable (Int32) -> Void
    private let logger = Logger(label: "selfanchor.server")
    private let queue: RequestQueue
    /// Loads models one at a time, beside the requests running on the old one (the swap is exclusive).
    private let loader = DispatchQueue(label: "selfanchor.loader")
    private let started = ContinuousClock.now

    typealias Job = RequestQueue.Job

    private struct State {
        var initialized = false
        var shutdownRequested = false
        var engine: Engine?
        var model: ModelDescription?
        var loading = 0
    }
    private let state = Mutex(State())
    /// Set once, by `initialize`; held so that the timer keeps firing.
    private let processWatch = Mutex<DispatchSourceTimer?>(nil)

    public init(options: ServerOptions, output: @escaping @Sendable (Message) -> Void,
                exit: @escaping @Sendable (Int32) -> Void)
    {
        self.options = options
        self.output = output
        self.exitHandler = exit
        queue = RequestQueue(parallel: options.parallel, maxQueue: options.maxQueue)
    }

    /// Runs `body` once no request is running (and none starts until it returns).
    private func exclusively(_ body: @escaping @Sendable () -> Void) { queue.exclusively(body) }

    /// Loads the initial model on the admission queue, exclusively, so requests queue behind it.
    public func start() {
        guard let model = options.initialModel else { return }
        state.withLock { $0.loading += 1 }
        exclusively {
            defer { self.state.withLock { $0.loading -= 1 } }
            do throws(ResponseError) {
                let (engine, description) = try self.load(ModelLoadParams(model: model), progress: nil)
                self.state.withLock {
                    $0.engine = engine
                    $0.model = description
                }
                self.logger.info("model loaded: \(description.path)")
            } catch {
                self.logger.error("could not load the model \(model): \(error.message)")
            }
        }
    }

    /// Waits until every queued request has been answered (used at end of input).
    public func drain() {
        loader.sync {}
        queue.drain()
    }

    // MARK: Receiving

    /// A message arrived.
    public func receive(_ message: Message) {
        switch message {
        case .request(let id, let method, let params):
            handleRequest(id: id, method: method, params: params)
        case .notification(let method, let params):
            handleNotification(method: method, params: params)
        case .response, .errorResponse:
            logger.debug("ignoring a response from the client")
        }
    }

    /// A message could not be read; answer with an error (id null unless it could be read).
    public func receiveInvalid(_ error: ResponseError, id: RequestID? = nil) {
        output(.errorResponse(id: id, error: error))
    }

    private func handleNotification(method: String, params: JSONValue?) {
        switch method {
        case Method.exit:
            // After shutdown, what was accepted before it finishes first (a script may send shutdown and
            // exit at once, without waiting for the answer); without shutdown, exit at once, status 1.
            guard state.withLock({ $0.shutdownRequested }) else { return exitHandler(1) }
            drain()
            exitHandler(0)
        case Method.initialized:
            break
        case Method.cancelRequest:
            guard let params = try? CancelParams(params) else {
                logger.warning("ignoring $/cancelRequest without a valid id")
                return
            }
            cancel(params.id)
        default:
            logger.debug("ignoring notification \(method)")
        }
    }

    private func handleRequest(id: RequestID, method: String, params: JSONValue?) {
        let (initialized, shuttingDown) = state.withLock { ($0.initialized, $0.shutdownRequested) }
        if method == Method.initialize {
            guard !initialized else {
                return reply(id, error: ResponseError(code: ErrorCode.invalidRequest, message: "initialize was already received"))
            }
            return initialize(id: id, params: params)
        }
        guard initialized else {
            return reply(id, error: ResponseError(code: ErrorCode.serverNotInitialized,
                                                  message: "the server is not initialized: send initialize first"))
        }
        if shuttingDown {
            return reply(id, error: ResponseError(code: ErrorCode.invalidRequest,
                                                  message: "the server is shutting down: only the exit notification is accepted"))
        }
        do throws(ResponseError) {
            switch method {
            case Method.shutdown:
                state.withLock { $0.shutdownRequested = true }
                // After everything accepted before it: model loads in progress (the loader queue is
                // serial and hands each load's swap to the admission queue), then every queued request.
                loader.async { self.exclusively { self.reply(id, result: .null) } }
            case Method.solve:
                let params = try SolveParams(params, limits: options.limits)
                try enqueue(id: id, method: method) { (job) async throws(ResponseError) in try await self.runSolve(job, params) }
            case Method.generate:
                let params = try GenerateParams(params, limits: options.limits)
                try enqueue(id: id, method: method) { (job) async throws(ResponseError) in try await self.runGenerate(job, params) }
            case Method.analyze:
                let params = try AnalyzeParams(params)
                try enqueueExclusive(id: id, method: method) { (job) throws(ResponseError) in
                    try self.runAnalyze(job, params)
                }
            case Method.modelLoad:
                try loadModel(id: id, params: ModelLoadParams(params))
            case Method.modelInfo:
                guard let model = state.withLock({ $0.model }) else { throw notLoaded() }
                reply(id, result: model.jsonValue)
            case Method.modelUnload:
                try enqueueExclusive(id: id, method: method) { _ in
                    let had = self.state.withLock { state in
                        defer {
                            state.engine = nil
                            state.model = nil
                        }
                        return state.engine != nil
                    }
                    return ModelUnloadResult(unloaded: had).jsonValue
                }
            case Method.serverStatus:
                reply(id, result: status().jsonValue)
            case Method.exit, Method.initialized, Method.cancelRequest:
                throw ResponseError(code: ErrorCode.invalidRequest, message: "\(method) is a notification: send it without an id")
            default:
                let name = method.count > 200 ? method.prefix(200) + "…" : method
                throw ResponseError(code: ErrorCode.methodNotFound, message: "method not found: \(name)")
            }
        } catch {
            reply(id, error: error)
        }
    }

    // MARK: Lifecycle

    private func initialize(id: RequestID, params: JSONValue?) {
        let reader: ParamsReader
        do { reader = try ParamsReader(params) } catch { return reply(id, error: error) }
        if let pid = reader.object["processId"], pid != .null {
            guard let number = pid.integerValue, number > 0, number <= Int64(Int32.max) else {
                return reply(id, error: ParamsReader.invalid("params.processId", "expected a positive integer or null, got \(pid.serialized())"))
            }
            watchParent(pid_t(number))
        }
        state.withLock { $0.initialized = true }
        // The answer describes the model, so it waits for the start-up load (if any) to finish.
        if state.withLock({ $0.loading > 0 }) { drainStartup() }
        let model = state.withLock { $0.model }
        let result = InitializeResult(
            serverName: Self.name, serverVersion: Self.version, model: model, strategies: Strategy.allCases.map(\.rawValue),
            tasks: TaskType.allCases.map(\.rawValue),
            methods: [Method.solve, Method.generate, Method.analyze, Method.modelLoad, Method.modelInfo, Method.modelUnload,
                      Method.serverStatus, Method.cancelRequest, Method.shutdown],
            notifications: [Method.event, Method.progress], maxMessageBytes: options.maxMessageBytes, maxQueue: options.maxQueue,
            limits: options.limits, contextSize: model?.contextSize ?? options.contextSize, parallel: queue.parallel)
        reply(id, result: result.jsonValue)
    }

    /// Exits when the process that started us is gone (LSP's processId).
    private func watchParent(_ pid: pid_t) {
        processWatch.withLock { [logger, exitHandler] watch in
            let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
            timer.schedule(deadline: .now() + 1, repeating: 1)
            timer.setEventHandler {
                if kill(pid, 0) != 0 && errno == ESRCH {
                    logger.warning("parent process \(pid) is gone; exiting")
                    exitHandler(1)
                }
            }
            timer.resume()
            watch = timer
        }
    }

    // MARK: Queue

    /// Waits for the start-up model load (it runs on the admission queue, exclusively).
    private func drainStartup() { queue.waitForAdmission() }

    /// Queues a decoding request whose `body` computes its result; the queue answers it exactly once.
    private func enqueue(id: RequestID, method: String,
                         _ body: @escaping @Sendable (Job) async throws(ResponseError) -> JSONValue) throws(ResponseError)
    {
        try queue.enqueue(id: id, method: method, .ordinary { job in
            do throws(ResponseError) { self.answer(job, .success(try await body(job))) } catch { self.answer(job, .failure(error)) }
        })
    }

    /// Queues a request that runs alone (`analyze`, `model/unload`); the queue answers it exactly once.
    private func enqueueExclusive(id: RequestID, method: String,
                                  _ body: @escaping @Sendable (Job) throws(ResponseError) -> JSONValue) throws(ResponseError)
    {
        try queue.enqueue(id: id, method: method, .exclusive { job in
            self.answer(job, Result { () throws(ResponseError) in try body(job) })
        })
    }

    /// Finishes a queued job with its result or its error.
    private func answer(_ job: Job, _ outcome: Result<JSONValue, ResponseError>) {
        queue.finish(job) {
            switch outcome {
            case .success(let result): reply(job.id, result: result)
            case .failure(let error): reply(job.id, error: error)
            }
        }
    }

    /// Cancels every request in flight, as `$/cancelRequest` would (used when the client is gone or
    /// the daemon is exiting): queued ones never start, the running one stops within one decode step.
    public func cancelAll() {
        for id in queue.unanswered { cancel(id) }
    }

    private func cancel(_ id: RequestID) {
        switch queue.cancel(id) {
        case .notFound:
            logger.debug("cancel of \(id): no such request in flight")
        case .running:
            break
        case .queued(let job):
            queue.finish(job) {
                reply(id, error: ResponseError(code: ErrorCode.requestCancelled, message: "request cancelled before it started",
                                               data: ["partial": .null]))
            }
        }
    }

    // MARK: Work

    private func engine() throws(ResponseError) -> Engine {
        guard let engine = state.withLock({ $0.engine }) else { throw notLoaded() }
        return engine
    }

    private func notLoaded() -> ResponseError {
        let loading = state.withLock { $0.loading > 0 }
        return ResponseError(code: ErrorCode.modelNotLoaded,
                             message: loading ? "the model is still loading" : "no model is loaded: call model/load first")
    }

    private func runSolve(_ job: Job, _ params: SolveParams) async throws(ResponseError) -> JSONValue {
        let request = SolveRequest(params)
        return try await run(job, stream: params.stream) { (engine, onEvent) async throws(DecoderError) in
            try await engine.solve(request, cancellation: job.flag, onEvent: onEvent)
        }
    }

    private func runGenerate(_ job: Job, _ params: GenerateParams) async throws(ResponseError) -> JSONValue {
        let request = GenerateRequest(params)
        return try await run(job, stream: params.stream) { (engine, onEvent) async throws(DecoderError) in
            try await engine.generate(request, cancellation: job.flag, onEvent: onEvent)
        }
    }

    private func runAnalyze(_ job: Job, _ params: AnalyzeParams) throws(ResponseError) -> JSONValue {
        let engine = try engine()
        do {
            return AnalysisResultMessage(try engine.analyze(AnalyzeRequest(params), cancellation: job.flag)).jsonValue
        } catch {
            if case .cancelled = error {
                throw ResponseError(code: ErrorCode.requestCancelled, message: "request cancelled", data: ["partial": .null])
            }
            throw Self.responseError(error)
        }
    }

    /// Runs a decoding job on the loaded engine, streaming its events when asked to.
    private func run(_ job: Job, stream: Bool,
                     _ body: (Engine, @escaping @Sendable (DecoderEvent) -> Void) async throws(DecoderError) -> SolveResult)
        async throws(ResponseError) -> JSONValue
    {
        let engine = try engine()
        let id = job.id
        do {
            return SolveResultMessage(try await body(engine) { event in
                if stream { self.notify(id: id, event: event) }
            }).jsonValue
        } catch {
            throw Self.responseError(error)
        }
    }

    private func notify(id: RequestID, event: DecoderEvent) {
        output(.notification(method: Method.event, params: ["id": id.value, "event": EventMessage(event).jsonValue]))
    }

    static func responseError(_ error: DecoderError) -> ResponseError {
        switch error {
        case .cancelled(let partial):
            return ResponseError(code: ErrorCode.requestCancelled, message: "request cancelled",
                                 data: ["partial": SolveResultMessage(partial).jsonValue])
        case .promptTooLong(let tokens, let capacity):
            return ResponseError(code: ErrorCode.promptTooLong,
                                 message: "the prompt needs \(tokens) tokens but the context holds \(capacity)",
                                 data: ["tokens": .int(tokens), "contextSize": .int(capacity)])
        case .invalidRequest(let message, let field?):
            return ParamsReader.invalid("params.\(field)", message)
        case .invalidRequest(let message, nil):
            return ResponseError(code: ErrorCode.invalidParams, message: message)
        case .llama(let error):
            return ResponseError(code: ErrorCode.internalError, message: error.description)
        }
    }

    // MARK: Models

    private func loadModel(id: RequestID, params: ModelLoadParams) throws(ResponseError) {
        let token = JSONValue.string("model/load:\(id)")
        state.withLock { $0.loading += 1 }
        loader.async {
            defer { self.state.withLock { $0.loading -= 1 } }
            self.progress(token, ["kind": "begin", "title": "Loading model", "message": .string(params.model), "percentage": 0])
            do throws(ResponseError) {
                let (engine, description) = try self.load(params) { fraction in
                    self.progress(token, ["kind": "report", "percentage": .int(Int(fraction * 100))])
                }
                // Swap between requests: what is queued now finishes on the old model.
                self.exclusively {
                    self.state.withLock {
                        $0.engine = engine
                        $0.model = description
                    }
                    self.progress(token, ["kind": "end", "message": "loaded"])
                    self.reply(id, result: description.jsonValue)
                }
            } catch {
                self.progress(token, ["kind": "end", "message": "failed"])
                self.reply(id, error: error)
            }
        }
    }

    private func progress(_ token: JSONValue, _ value: JSONValue) {
        output(.notification(method: Method.progress, params: ["token": token, "value": value]))
    }

    private func load(_ params: ModelLoadParams, progress: ((Float) -> Void)?) throws(ResponseError)
        -> (Engine, ModelDescription)
    {
        let path = ModelCatalog.path(for: params.model)
        do {
            let model = try LlamaModel(path: path, gpuLayers: Int32(params.gpuLayers ?? options.gpuLayers),
                                       useMmap: options.useMmap, progress: progress)
            var contextOptions = Engine.defaultContextOptions
            contextOptions.contextSize = params.contextSize ?? options.contextSize
            contextOptions.threads = params.threads ?? options.threads
            contextOptions.adaptiveThreads = !options.fixedThreads
            let engine = try Engine(model: model, options: contextOptions, parallel: options.parallel)
            let name = ModelCatalog.isCatalogName(params.model) ? params.model : (model.metadata("general.name") ?? params.model)
            return (engine, ModelDescription(name: name, path: path, model: model, contextSize: engine.requestCapacity))
        } catch {
            var message = "could not load \(path): \(error.description)"
            if case .fileNotFound = error, ModelCatalog.isCatalogName(params.model) {
                message += " (\(ModelCatalog.installHint(for: params.model)))"
            }
            throw ResponseError(code: ErrorCode.modelLoadFailed, message: message,
                                data: ["path": .string(path), "reason": .string(error.description)])
        }
    }

    // MARK: Status

    private func status() -> ServerStatusResult {
        let now = ContinuousClock.now
        let engine = state.withLock { $0.engine }
        let rss = Self.residentBytes()
        let queued = queue.snapshot
        return state.withLock { state in
            ServerStatusResult(
                model: state.model, loading: state.loading > 0, waiting: queued.waiting, maxQueue: options.maxQueue,
                parallel: queue.parallel,
                inFlight: queued.inFlight.map { job in
                    .init(id: job.id.value, method: job.method, running: job.running,
                          elapsedMs: Self.milliseconds(now - job.enqueued))
                },
                served: queued.served, rssBytes: rss, kvCacheBytes: engine?.kvCacheBytes,
                modelBytes: engine.map { Self.fileSize($0.model.path) }, uptimeMs: Self.milliseconds(now - started))
        }
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Resident set size from /proc/self/statm.
    static func residentBytes() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return 0 }
        let fields = String(decoding: buffer[0..<count], as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    // MARK: Output

    private func reply(_ id: RequestID, result: JSONValue) { output(.response(id: id, result: result)) }
    private func reply(_ id: RequestID, error: ResponseError) { output(.errorResponse(id: id, error: error)) }
}
