import AttentionAnalysis
import Llama
import Synchronization

/// The resident model and its context: runs solves and steered generations, several at once.
///
/// Owns one `LlamaContext` whose KV cache is shared by up to `parallel` requests in flight. Each
/// request holds a slot of three sequences — the real context, the context with the question masked,
/// and the context with the question and the current plan masked — and every request's tokens go
/// through one `BatchScheduler`, so requests decoding at the same time share each `llama_decode`.
/// Sequence 0 keeps the prompt prefix requests of a kind share (chat template and system prompt, up
/// to where the question starts) between requests: the prompt cache.
/// Unchecked: free slots and the prompt cache change under `slotLock`/`promptCacheLock` (ConditionLocks).
public final class Engine: @unchecked Sendable {
    public let model: LlamaModel
    let context: LlamaContext
    let scheduler: BatchScheduler
    /// What batching costs on this machine, measured when the engine was made; the scheduler decodes
    /// small rounds by it.
    public let batchCalibration: BatchCalibration
    /// Requests that decode at once; more wait for a slot.
    public let parallel: Int
    /// One request's context window in tokens (its real and masked contexts share it).
    public let requestCapacity: Int

    /// Holds the cached prompt prefix between requests.
    static let promptCacheSequence: Int32 = 0
    /// Prefixes shorter than this are not worth caching.
    static let promptCacheMinimum = 16

    /// The KV-cache sequences (and attention tracker) of one request in flight.
    final class Slot {
        let index: Int
        let real: Int32
        let questionMasked: Int32
        let planMasked: Int32
        /// The attention-reading context of `attention-anchor`, made on first use and kept.
        var tracker: AttentionTracker?
        var sequences: [Int32] { [real, questionMasked, planMasked] }

        init(index: Int) {
            self.index = index
            real = Int32(1 + 3 * index)
            questionMasked = real + 1
            planMasked = real + 2
        }
    }
    private let slots: [Slot]
    private var freeSlots: [Int]
    private let slotLock = ConditionLock()
    /// Attention trackers decode on their own contexts: one at a time, so they never compete for the
    /// cores with each other.
    let trackerLock = ConditionLock()

    /// What the prompt-cache sequence holds, and who uses it. It is refilled only when nobody uses it.
    private struct PromptCache {
        var tokens: [LlamaToken] = []
        var filling = false
        var users = 0
    }
    private var promptCache = PromptCache()
    private let promptCacheLock = ConditionLock()

    /// Forgets the cached prompt prefix (the next request decodes it again), unless a request uses it.
    public func dropPromptCache() {
        promptCacheLock.withLock {
            guard promptCache.users == 0 && !promptCache.filling else { return }
            promptCache.tokens = []
            emptyPromptCacheSequence()
        }
    }

    enum PromptCacheClaim { case ready, fill, unavailable }

    /// A request wants `prefix` from the prompt cache: it is there (`ready`), or this request is to
    /// decode it there (`fill`; nobody else was using the old one), or it cannot be had now.
    func claimPromptCache(_ prefix: [LlamaToken]) -> PromptCacheClaim {
        promptCacheLock.withLock {
            if promptCache.filling { return .unavailable }
            if promptCache.tokens == prefix {
                promptCache.users += 1
                return .ready
            }
            guard promptCache.users == 0 else { return .unavailable }
            promptCache = PromptCache(tokens: [], filling: true, users: 1)
            emptyPromptCacheSequence()
            return .fill
        }
    }

    /// The request that claimed `fill` is done filling (nil: it failed and the sequence was emptied).
    func finishFillingPromptCache(_ prefix: [LlamaToken]?) {
        promptCacheLock.withLock {
            promptCache.filling = false
            promptCache.tokens = prefix ?? []
            if prefix == nil { emptyPromptCacheSequence() }
        }
    }

    private func emptyPromptCacheSequence() {
        _ = scheduler.withContext { $0.removeTokens(sequence: Engine.promptCacheSequence) }
    }

    /// A request that claimed the prompt cache has ended.
    func releasePromptCache() {
        promptCacheLock.withLock { promptCache.users -= 1 }
    }

    /// Context settings the engine uses unless told otherwise (`contextSize` is per request).
    public static var defaultContextOptions: ContextOptions {
        var options = ContextOptions()
        options.contextSize = 4096
        options.unifiedKV = true
        return options
    }

    /// `options.contextSize` is one request's window; the KV cache holds `parallel` of them.
    public init(model: LlamaModel, options: ContextOptions = Engine.defaultContextOptions, parallel: Int = 1)
        throws(LlamaError)
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
        self.context = context
        self.scheduler = BatchScheduler(context: context)
        self.batchCalibration = try BatchCalibration.measure(context: context, model: model)
        scheduler.smallRoundLimit = batchCalibration.smallRoundLimit
        self.slots = (0..<parallel).map(Slot.init)
        self.freeSlots = Array(0..<parallel)
    }

    /// Waits for a free slot.
    func acquireSlot() -> Slot {
        slotLock.lock()
        while freeSlots.isEmpty { slotLock.wait() }
        let index = freeSlots.removeFirst()
        slotLock.unlock()
        return slots[index]
    }

    func releaseSlot(_ slot: Slot) {
        slotLock.withLock {
            freeSlots.append(slot.index)
            freeSlots.sort()
            slotLock.broadcast()
        }
    }

    /// The context's thread governor (its counts so far; nil with one thread).
    public var threadGovernor: ThreadGovernor? { scheduler.withContext { $0.threadGovernor } }

    /// Whether generation may drop to half the threads while that is faster (`ThreadGovernor`); set
    /// between requests (bench compares the two).
    public var adaptiveThreads: Bool { scheduler.withContext { $0.adaptsThreads } }

    public func setAdaptiveThreads(_ on: Bool) {
        scheduler.withContext { $0.setAdaptiveThreads(on) }
    }

    /// Requests decoding now.
    public var requestsInFlight: Int { scheduler.runCount }

    /// `llama_decode` calls so far, and the request submissions they carried (their ratio is how many
    /// requests an average decode served).
    public var batchedDecodes: Int { scheduler.decodeCount }
    public var batchedSubmissions: Int { scheduler.submissionCount }

    /// Bytes of KV cache the context holds (f16 keys and values for every layer and cell).
    public var kvCacheBytes: Int { context.capacity * model.kvBytesPerCell }

    func attentionTracker(for slot: Slot) throws -> AttentionTracker {
        if let tracker = slot.tracker { return tracker }
        let made: AttentionTracker
        do {
            made = try AttentionTracker(model: model, options: AttentionAnalysisOptions(), capacity: requestCapacity,
                                        threads: context.options.threads,
                                        adaptiveThreads: context.options.adaptiveThreads)
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
                      onEvent: @escaping (DecoderEvent) -> Void = { _ in }) throws(DecoderError) -> SolveResult
    {
        let slot = acquireSlot()
        defer { releaseSlot(slot) }
        let run = DecodingRun(engine: self, slot: slot, sampling: request.sampling, cancellation: cancellation, emit: onEvent,
                              strategy: request.strategy.rawValue, question: request.question)
        run.calculator = request.calculator
        return try run.execute {
            switch request.strategy {
            case .selfAnchor, .attentionAnchor:
                try run.selfAnchor(request)
            case .plain, .cot, .psPlus, .re2:
                let (messages, prefix) = Prompts.conversation(strategy: request.strategy, question: request.question,
                                                              task: request.task)
                try run.freeText(messages: messages, masked: nil, assistantPrefix: prefix,
                                 omega: 1, modulation: false, maxTokens: request.maxTokens, task: request.task)
            case .spa:
                let (messages, prefix) = Prompts.conversation(strategy: .spa, question: request.question, task: request.task)
                let anchors = request.anchors.isEmpty ? [request.question] : request.anchors
                let masked = try run.mask(messages, anchors: anchors, placeholder: request.placeholder, field: "options.anchors")
                run.maskedPass = request.steering.maskedPass
                run.skipMaskedAbove = request.steering.skipMaskedAbove
                run.resultOmega = request.steering.resultOmega
                try run.freeText(messages: messages, masked: masked, assistantPrefix: prefix,
                                 omega: request.steering.spaOmega, modulation: request.steering.modulation,
                                 maxTokens: request.maxTokens, task: request.task)
            }
        }
    }

    /// SPA-steered generation for any conversation; unsteered when there are no anchors.
    public func generate(_ request: GenerateRequest, cancellation: CancellationFlag = CancellationFlag(),
                         onEvent: @escaping (DecoderEvent) -> Void = { _ in }) throws(DecoderError) -> SolveResult
    {
        let slot = acquireSlot()
        defer { releaseSlot(slot) }
        let run = DecodingRun(engine: self, slot: slot, sampling: request.sampling, cancellation: cancellation, emit: onEvent,
                              strategy: request.anchors.isEmpty ? "generate" : "spa",
                              question: request.messages.last(where: { $0.role == "user" })?.content ?? "")
        return try run.execute {
            let masked = request.anchors.isEmpty
                ? nil : try run.mask(request.messages, anchors: request.anchors, placeholder: request.placeholder, field: "anchors")
            run.maskedPass = request.maskedPass
            run.skipMaskedAbove = request.skipMaskedAbove
            try run.freeText(messages: request.messages, masked: masked, assistantPrefix: "", omega: request.omega,
                             modulation: request.modulation, maxTokens: request.maxTokens, task: nil)
        }
    }
}
