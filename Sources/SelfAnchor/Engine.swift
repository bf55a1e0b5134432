import AttentionAnalysis
import Llama

/// The resident model and its context: runs solves and steered generations, several at once.
///
/// Owns one `LlamaContext`, through its `ContextScheduler`, whose KV cache is shared by up to `parallel`
/// requests in flight. Each request holds a slot of three sequences — the real context, the context
/// with the question masked, and the context with the question and the current plan masked — and
/// runs as an async function on the scheduler's thread, which decodes the tokens of every request in
/// flight together, so requests decoding at the same time share each `llama_decode`. The blocking
/// `solve`/`generate` are for callers on threads of their own (the CLI, eval's workers, tests).
/// Sequence 0 keeps the prompt prefix requests of a kind share (chat template and system prompt, up
/// to where the question starts) between requests: the prompt cache.
public final class Engine: Sendable {
    public let model: LlamaModel
    /// The context's settings (the context itself belongs to `scheduler`).
    let contextOptions: ContextOptions
    /// KV cells the context holds.
    let kvCells: Int
    let scheduler: ContextScheduler
    /// What batching costs on this machine, measured when the engine was made; the scheduler decodes
    /// small rounds by it.
    public let batchCalibration: BatchCalibration
    /// Requests that decode at once; more wait for a slot.
    public let parallel: Int
    /// One request's context window in tokens (its real and masked contexts share it).
    public let requestCapacity: Int

    /// Request slots (three KV sequences each); more requests than slots wait for one.
    let slots: SlotPool
    /// The prompt prefix shared between requests (KV sequence 0).
    let promptCache: PromptCache

    /// Forgets the cached prompt prefix (the next request decodes it again), unless a request uses it.
    public func dropPromptCache() { promptCache.drop() }

    /// Context settings the engine uses unless told otherwise (`contextSize` is per request).
    public static var defaultContextOptions: ContextOptions {
        var options = ContextOptions()
        options.contextSize = 4096
        options.unifiedKV = true
        return options
    }

    /// How an engine decides whether small rounds are batched (`BatchCalibration`, `BatchingChoiceStore`).
    public enum Batching: Sendable {
        /// The choice stored for this machine, model and thread count; measured and stored when there is
        /// none. Greedy output then repeats from one engine to the next.
        case remembered(BatchingChoiceStore)
        /// This engine's own measurement, stored for the engines after it (`bench`).
        case measuredAndStored(BatchingChoiceStore)
        /// This engine's own measurement, not stored.
        case measured

        public static var standard: Batching { .remembered(.standard) }
    }

    /// `options.contextSize` is one request's window; the KV cache holds `parallel` of them.
    public init(model: LlamaModel, options: ContextOptions = Engine.defaultContextOptions, parallel: Int = 1,
                batching: Batching = .standard) throws(LlamaError)
    {
        let parallel = max(1, parallel)
        var options = options
        self.requestCapacity = options.contextSize
        options.contextSize = options.contextSize * parallel
        options.sequences = 1 + 3 * parallel
        options.unifiedKV = true
        self.model = model
        self.parallel = parallel
        let context = try LlamaContext(model: model, options: options)
        self.contextOptions = context.options
        self.kvCells = context.capacity
        var calibration = try BatchCalibration.measure(context: context, model: model)
        let key = BatchingChoiceStore.key(model: model, threads: options.effectiveThreads)
        switch batching {
        case .remembered(let store):
            if let stored = store.limit(for: key) {
                calibration.smallRoundLimit = stored
                calibration.remembered = true
            } else {
                store.store(calibration.smallRoundLimit, for: key)
            }
        case .measuredAndStored(let store):
            store.store(calibration.smallRoundLimit, for: key)
        case .measured:
            break
        }
        self.batchCalibration = calibration
        self.scheduler = ContextScheduler(context: context)
        scheduler.smallRoundLimit = calibration.smallRoundLimit
        self.slots = SlotPool(count: parallel)
        self.promptCache = PromptCache(scheduler: scheduler)
    }

    /// The context's thread governor (its counts so far; nil with one thread).
    public var threadGovernor: ThreadGovernor? { scheduler.perform { $0.threadGovernor } }

    /// Whether generation may drop to half the threads while that is faster (`ThreadGovernor`); set
    /// between requests (bench compares the two).
    public var adaptiveThreads: Bool { scheduler.perform { $0.adaptsThreads } }

    public func setAdaptiveThreads(_ on: Bool) {
        scheduler.perform { $0.setAdaptiveThreads(on) }
    }

    /// Requests decoding now.
    public var requestsInFlight: Int { scheduler.runCount }

    /// `llama_decode` calls so far, and the request submissions they carried (their ratio is how many
    /// requests an average decode served).
    public var batchedDecodes: Int { scheduler.decodeCount }
    public var batchedSubmissions: Int { scheduler.submissionCount }

    /// Bytes of KV cache the context holds (f16 keys and values for every layer and cell).
    public var kvCacheBytes: Int { kvCells * model.kvBytesPerCell }

    func attentionTracker(for slot: Slot) throws -> AttentionTracker {
        if let tracker = slot.tracker { return tracker }
        let made: AttentionTracker
        do {
            made = try AttentionTracker(model: model, options: AttentionAnalysisOptions(), capacity: requestCapacity,
                                        threads: contextOptions.threads,
                                        adaptiveThreads: contextOptions.adaptiveThreads)
        } catch {
            switch error {
            case .llama(let error): throw error
            default: throw DecoderError.invalidRequest("attention-anchor: \(error)")
            }
        }
        slot.tracker = made
        return made
    }

    /// Solves a question with the request's strategy, reporting events as they happen.
    public func solve(_ request: SolveRequest, cancellation: CancellationFlag = CancellationFlag(),
                      onEvent: @escaping @Sendable (DecoderEvent) -> Void = { _ in }) async throws(DecoderError) -> SolveResult
    {
        try await inSlot { (slot) async throws(DecoderError) in
            try await self.solve(request, slot: slot, cancellation: cancellation, onEvent: onEvent)
        }
    }

    private func solve(_ request: SolveRequest, slot: Slot, cancellation: CancellationFlag,
                       onEvent: @escaping @Sendable (DecoderEvent) -> Void) async throws(DecoderError) -> SolveResult
    {
        let run = DecodingRun(engine: self, slot: slot, sampling: request.sampling, cancellation: cancellation, emit: onEvent,
                              strategy: request.strategy.rawValue, question: request.question)
        run.calculator = request.usesCalculator
        return try await run.execute {
            switch request.strategy {
            case .selfAnchor, .attentionAnchor:
                try await run.selfAnchor(request)
            case .plain, .cot, .psPlus, .re2:
                let (messages, prefix) = Prompts.conversation(strategy: request.strategy, question: request.question,
                                                              task: request.task)
                try await run.freeText(messages: messages, masked: nil, assistantPrefix: prefix,
                                 omega: 1, modulation: false, maxTokens: request.maxTokens, task: request.task)
            case .spa:
                let (messages, prefix) = Prompts.conversation(strategy: .spa, question: request.question, task: request.task)
                let anchors = request.anchors.isEmpty ? [request.question] : request.anchors
                let masked = try run.mask(messages, anchors: anchors, placeholder: request.placeholder, field: "options.anchors")
                run.adopt(request.steering)
                run.resultOmega = request.steering.resultOmega
                try await run.freeText(messages: messages, masked: masked, assistantPrefix: prefix,
                                 omega: request.steering.spaOmega, modulation: request.steering.modulation,
                                 maxTokens: request.maxTokens, task: request.task)
            }
        }
    }

    /// SPA-steered generation for any conversation; unsteered when there are no anchors.
    public func generate(_ request: GenerateRequest, cancellation: CancellationFlag = CancellationFlag(),
                         onEvent: @escaping @Sendable (DecoderEvent) -> Void = { _ in }) async throws(DecoderError) -> SolveResult
    {
        try await inSlot { (slot) async throws(DecoderError) in
            try await self.generate(request, slot: slot, cancellation: cancellation, onEvent: onEvent)
        }
    }

    private func generate(_ request: GenerateRequest, slot: Slot, cancellation: CancellationFlag,
                          onEvent: @escaping @Sendable (DecoderEvent) -> Void) async throws(DecoderError) -> SolveResult
    {
        let run = DecodingRun(engine: self, slot: slot, sampling: request.sampling, cancellation: cancellation, emit: onEvent,
                              strategy: request.anchors.isEmpty ? "generate" : "spa",
                              question: request.messages.last(where: { $0.role == "user" })?.content ?? "")
        return try await run.execute {
            let masked = request.anchors.isEmpty
                ? nil : try run.mask(request.messages, anchors: request.anchors, placeholder: request.placeholder, field: "anchors")
            run.maskedPass = request.maskedPass
            run.skipMaskedAbove = request.skipMaskedAbove
            try await run.freeText(messages: request.messages, masked: masked, assistantPrefix: "", omega: request.omega,
                             modulation: request.modulation, maxTokens: request.maxTokens, task: nil)
        }
    }

    /// Runs a request in a slot of its own (waiting, suspended, for one) with the scheduler as its task
    /// executor: the request's decoder runs on the scheduler's thread and is stepped there once per round.
    private func inSlot(_ body: (Slot) async throws(DecoderError) -> SolveResult) async throws(DecoderError) -> SolveResult {
        try await withTaskExecutorPreference(scheduler) { () async throws(DecoderError) -> SolveResult in
            let slot = await slots.acquire()
            defer { slots.release(slot) }
            return try await body(slot)
        }
    }

    /// `solve` for a caller on a thread of its own (never the scheduler's): waits for the result. `onEvent`
    /// runs on the scheduler's thread while the caller waits.
    public func solve(_ request: SolveRequest, cancellation: CancellationFlag = CancellationFlag(),
                      onEvent: @escaping (DecoderEvent) -> Void = { _ in }) throws(DecoderError) -> SolveResult
    {
        let events = UncheckedBox(onEvent)
        return try waitFor { () async throws(DecoderError) in
            try await self.solve(request, cancellation: cancellation) { events.value($0) }
        }
    }

    /// `generate` for a caller on a thread of its own (never the scheduler's): waits for the result.
    /// `onEvent` runs on the scheduler's thread while the caller waits.
    public func generate(_ request: GenerateRequest, cancellation: CancellationFlag = CancellationFlag(),
                         onEvent: @escaping (DecoderEvent) -> Void = { _ in }) throws(DecoderError) -> SolveResult
    {
        let events = UncheckedBox(onEvent)
        return try waitFor { () async throws(DecoderError) in
            try await self.generate(request, cancellation: cancellation) { events.value($0) }
        }
    }

    private func waitFor(_ body: @escaping @Sendable () async throws(DecoderError) -> SolveResult) throws(DecoderError)
        -> SolveResult
    {
        precondition(!scheduler.isCurrent, "a blocking solve on the scheduler's thread would wait for itself")
        let answer = HandOff<Result<SolveResult, DecoderError>>()
        Task(executorPreference: scheduler) {
            do throws(DecoderError) { answer.put(.success(try await body())) } catch { answer.put(.failure(error)) }
        }
        return try answer.wait().get()
    }

    deinit { scheduler.stop() }
}
