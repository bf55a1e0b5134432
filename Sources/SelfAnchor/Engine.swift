import AttentionAnalysis
import Llama
import Synchronization

/// A flag another thread sets to stop a running solve. The decoder checks it before every token and
/// llama.cpp polls it inside `llama_decode`, so a cancel takes effect within one decode step.
public final class CancellationFlag: Sendable {
    private let state = Atomic<Bool>(false)
    public init() {}
    public func cancel() { state.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { state.load(ordering: .relaxed) }
}

/// Why a solve did not produce a result.
public enum DecoderError: Error, Sendable, CustomStringConvertible {
    /// Stopped by its cancellation flag; what was generated until then is in `partial`.
    case cancelled(partial: SolveResult)
    /// The prompt alone does not fit the context.
    case promptTooLong(tokens: Int, capacity: Int)
    /// A request is unusable (an anchor not in the prompt, say); `field` is the one to blame, as its
    /// path under the request's params (`options.anchors`), when there is one.
    case invalidRequest(String, field: String? = nil)
    case llama(LlamaError)

    public var description: String {
        switch self {
        case .cancelled: return "cancelled"
        case .promptTooLong(let tokens, let capacity):
            return "the prompt has \(tokens) tokens but the context holds \(capacity)"
        case .invalidRequest(let message, let field): return field.map { "\($0): \(message)" } ?? message
        case .llama(let error): return error.description
        }
    }
}

/// The resident model and its context: runs solves and steered generations, several at once.
///
/// Owns one `LlamaContext` whose KV cache is shared by up to `parallel` requests in flight. Each
/// request holds a slot of three sequences — the real context, the context with the question masked,
/// and the context with the question and the current plan masked — and every request's tokens go
/// through one `BatchScheduler`, so requests decoding at the same time share each `llama_decode`.
/// Sequence 0 keeps the prompt prefix requests of a kind share (chat template and system prompt, up
/// to where the question starts) between requests: the prompt cache.
public final class Engine: @unchecked Sendable {
    public let model: LlamaModel
    public let context: LlamaContext
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

    /// Reuse the shared prompt prefix across requests (on by default). Output does not depend on it:
    /// with or without a cached prefix, a lone request decodes the prefix into the same cells first.
    public var promptCacheEnabled = true

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
        scheduler.withContext { $0.removeTokens(sequence: Engine.promptCacheSequence) }
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
                                        threads: context.options.threads)
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

/// The state of one request while it decodes: prompts, generated tokens, text, records and timings.
final class DecodingRun {
    let engine: Engine
    let slot: Engine.Slot
    let model: LlamaModel
    let cache: SequenceCache
    let sampler: LlamaSampler
    let cancellation: CancellationFlag
    let emit: (DecoderEvent) -> Void
    let clock = ContinuousClock()

    var realPrompt: [LlamaToken] = []
    /// The conversation `realPrompt` was made from, and its assistant prefix.
    var realMessages: ([ChatMessage], String) = ([], "")
    var maskedPrompt: [LlamaToken] = []
    var generated: [LlamaToken] = []
    private var textDecoder = UTF8StreamDecoder()
    var result: SolveResult
    private var steered: [Float]
    private var generationStart: ContinuousClock.Instant?

    /// This run claimed the prompt cache (and must release it).
    private var usesPromptCache = false

    init(engine: Engine, slot: Engine.Slot, sampling: SamplingOptions, cancellation: CancellationFlag,
         emit: @escaping (DecoderEvent) -> Void, strategy: String, question: String)
    {
        self.engine = engine
        self.slot = slot
        self.model = engine.model
        self.cache = SequenceCache(scheduler: engine.scheduler, sequences: slot.sequences, cancellation: cancellation)
        self.sampler = LlamaSampler(options: sampling)
        self.cancellation = cancellation
        self.emit = emit
        self.result = SolveResult(strategy: strategy, question: question, text: "", steps: [], answer: nil, timings: Timings())
        self.steered = Array(repeating: 0, count: engine.model.vocabularySize)
    }

    /// Runs `body` as one of the requests in flight (its decodes batched with theirs), turning failures
    /// into `DecoderError`s and always finishing with the `end` event's timings.
    ///
    /// Every run empties its sequences when it ends, so a request decoding alone finds nothing in the KV
    /// cache but the cached prompt prefix, in the first cells: reused cells elsewhere would change the
    /// order in which attention sums over them, and greedy decoding would no longer repeat itself
    /// exactly. (Requests decoding together do not repeat exactly: their batches differ from run to run.)
    func execute(_ body: () throws -> Void) throws(DecoderError) -> SolveResult {
        engine.scheduler.join()
        defer {
            cache.clear(slot.sequences)
            if usesPromptCache { engine.releasePromptCache() }
            engine.scheduler.leave()
        }
        do {
            try body()
        } catch let error as DecoderError {
            throw error
        } catch LlamaError.decodeAborted {
            result.timings.stopReason = .cancelled
        } catch StopDecoding.cancelled {
            result.timings.stopReason = .cancelled
        } catch let error as LlamaError {
            throw .llama(error)
        } catch {
            throw .invalidRequest("\(error)")
        }
        finishTimings()
        if result.timings.stopReason == .cancelled { throw .cancelled(partial: result) }
        emit(.end(result.timings))
        return result
    }

    enum StopDecoding: Error { case cancelled }

    func checkCancelled() throws {
        if cancellation.isCancelled { throw StopDecoding.cancelled }
    }

    /// The conversation with its anchors masked; `field` names the anchors in the request, for errors.
    func mask(_ messages: [ChatMessage], anchors: [String], placeholder: String, field: String) throws(DecoderError)
        -> [ChatMessage]
    {
        do {
            return try MaskedPrompt.mask(messages, anchors: anchors, placeholder: placeholder)
        } catch {
            switch error {
            case .emptyAnchor: throw .invalidRequest("an anchor is an empty string", field: field)
            case .anchorNotFound(let anchor): throw .invalidRequest("\"\(anchor)\" does not occur in the prompt", field: field)
            }
        }
    }

    // MARK: Prompts and prefill

    /// The real prompt's tokens; remembers the conversation for the prompt cache.
    func realPromptTokens(_ messages: [ChatMessage], assistantPrefix: String) throws -> [LlamaToken] {
        realMessages = (messages, assistantPrefix)
        return try promptTokens(messages, assistantPrefix: assistantPrefix)
    }

    /// The part of the real prompt that does not depend on the request's own text: the conversation
    /// with the last user message emptied, templated, as far as its tokens agree with the real prompt's
    /// (less one token, which may merge with what follows).
    func cacheablePrefix() throws -> [LlamaToken] {
        var messages = realMessages.0
        guard let last = messages.lastIndex(where: { $0.role == "user" }) else { return [] }
        messages[last].content = ""
        let empty = try promptTokens(messages, assistantPrefix: "")
        var length = 0
        while length < min(empty.count, realPrompt.count) && empty[length] == realPrompt[length] { length += 1 }
        return Array(realPrompt.prefix(max(0, length - 1)))
    }

    /// Uses the prompt cache when it holds this request's cacheable prefix, or refills it when it holds
    /// another one nobody is using (a lone request thus finds the prefix in the first cells).
    func syncPromptCache() throws {
        guard engine.promptCacheEnabled else { return }
        let prefix = try cacheablePrefix()
        guard prefix.count >= Engine.promptCacheMinimum else { return }
        let sequence = Engine.promptCacheSequence
        switch engine.claimPromptCache(prefix) {
        case .unavailable:
            return
        case .ready:
            usesPromptCache = true
            cache.track(sequence, holding: prefix)
        case .fill:
            usesPromptCache = true
            cache.track(sequence, holding: [])
            do {
                try cache.sync([SequenceCache.Target(sequence: sequence, tokens: prefix, wantsLogits: false)])
            } catch {
                engine.finishFillingPromptCache(nil)
                cache.forget(sequence)
                throw error
            }
            engine.finishFillingPromptCache(prefix)
        }
    }

    func promptTokens(_ messages: [ChatMessage], assistantPrefix: String) throws -> [LlamaToken] {
        let text = try model.applyChatTemplate(messages) + assistantPrefix
        return try model.tokenize(text, addSpecial: true, parseSpecial: true)
    }

    /// Decodes the prompts of the real and (if steered) masked contexts, sharing their common prefix.
    func prefill(steered: Bool) throws {
        let capacity = engine.requestCapacity
        let needed = realPrompt.count + (steered ? maskedPrompt.count : 0)
        if realPrompt.count + 8 > capacity || needed > capacity {
            throw DecoderError.promptTooLong(tokens: needed, capacity: capacity)
        }
        emit(.start(StartInfo(strategy: result.strategy, model: model.description, promptTokens: realPrompt.count,
                              maskedPromptTokens: steered ? maskedPrompt.count : 0)))
        let start = clock.now
        try syncPromptCache()
        var targets = [SequenceCache.Target(sequence: slot.real, tokens: realPrompt, wantsLogits: true)]
        if steered {
            targets.append(.init(sequence: slot.questionMasked, tokens: maskedPrompt, wantsLogits: true))
        }
        try cache.sync(targets)
        result.timings.promptN = realPrompt.count
        result.timings.promptDecodedN = cache.decodedCount(slot.real) + cache.decodedCount(Engine.promptCacheSequence)
        result.timings.promptMs = (clock.now - start).milliseconds
        generationStart = clock.now
    }

    private func finishTimings() {
        if let generationStart { result.timings.predictedMs = (clock.now - generationStart).milliseconds }
        result.timings.maskedN = cache.decodedCount(slot.questionMasked) + cache.decodedCount(slot.planMasked)
        let tail = textDecoder.finish()
        result.text += tail
    }

    // MARK: Tokens and text

    /// The masked context `advance` left behind (speculative and adaptive masked passes), decoded only
    /// when a token needs it.
    private var deferredMasked: SequenceCache.Target?
    /// How this run decodes its masked context (`SteeringOptions.maskedPass`).
    var maskedPass: SteeringOptions.MaskedPass = .every
    /// The adaptive masked pass's threshold (nil: the adaptive mode runs the masked context on every token).
    var skipMaskedAbove: Double?
    /// `advance` leaves the masked context to `chooseToken`.
    private var defersMasked: Bool {
        switch maskedPass {
        case .every: return false
        case .speculative: return true
        case .adaptive: return skipMaskedAbove != nil
        }
    }

    /// Picks the next token like `nextToken`, decoding the masked context as `maskedPass` says:
    /// - adaptive: a token whose real top-1 probability reaches the threshold is taken from the real
    ///   logits alone, without decoding the masked context;
    /// - speculative, where the caller allows a draft (`draftLimit`, the most tokens it may take
    ///   without changing the anchors): the real context drafts, the masked one verifies the draft in one
    ///   batch (`speculate`), and the verified tokens are handed out one per call;
    /// - otherwise the masked context first catches up (every token it missed, in one batch).
    /// See `Steering.swift` for the rules.
    func chooseToken(maskedSequence: Int32?, omega: Double, modulation: Bool, greedy: Bool = false,
                     draftLimit: Int? = nil) throws -> (LlamaToken, Double)
    {
        if hasVerified { return takeVerified() }
        guard let maskedSequence, let deferred = deferredMasked, deferred.sequence == maskedSequence else {
            return nextToken(maskedSequence: maskedSequence, omega: omega, modulation: modulation, greedy: greedy)
        }
        if maskedPass == .adaptive, let threshold = skipMaskedAbove {
            let top = cache.logits(slot.real).withUnsafeBufferPointer(Steering.topProbability)
            if top.probability >= threshold {
                result.timings.maskedSkippedN += 1
                return nextToken(maskedSequence: nil, omega: 1, modulation: false, greedy: greedy)
            }
        }
        if maskedPass == .speculative, let draftLimit, draftLimit > 1 {
            return try speculate(deferred: deferred, omega: omega, modulation: modulation, greedy: greedy,
                                 limit: draftLimit)
        }
        do {
            try cache.sync([deferred])
        } catch {
            guard error == .decodeFailed(code: 1) else { throw error }
            // No room left for the masked context's catch-up: this token goes unsteered.
            return nextToken(maskedSequence: nil, omega: 1, modulation: false, greedy: greedy)
        }
        return nextToken(maskedSequence: maskedSequence, omega: omega, modulation: modulation, greedy: greedy)
    }

    // MARK: Speculative masked pass

    /// Tokens the speculative masked pass verified that the decoder has not taken yet, with their real
    /// probabilities. They follow `generated` while its count is `verifiedAt` (`insert` drops them:
    /// inserted text changes what follows).
    private var verified: [(token: LlamaToken, probability: Double)] = []
    private var verifiedAt = 0
    /// The next draft's length, adapted to how much of the drafts the steered choice accepts.
    private var draftLength = 4
    static let maximumDraftLength = 16
    /// Uniform draws for speculative sampling's acceptance test (seeded by the request's seed).
    private lazy var uniforms = SplitMix64(seed: UInt64(sampler.options.seed))

    /// Whether verified tokens are waiting for exactly this point of `generated` (a pure query: text
    /// inserted since the draft clears them in `insert`).
    private var hasVerified: Bool { !verified.isEmpty && generated.count == verifiedAt }

    private func takeVerified() -> (LlamaToken, Double) {
        verifiedAt += 1
        return verified.removeFirst()
    }

    /// Whether a draft stops after this token: at a line end (where the decoder changes anchors), at
    /// the end of generation, and, with the calculator on or a `resultOmega`, at `=` (where a value is
    /// inserted, or steered with its own ω).
    private func endsDraft(_ token: LlamaToken) -> Bool {
        if model.isEndOfGeneration(token) { return true }
        let piece = model.piece(token)
        return piece.contains(UInt8(ascii: "\n")) || ((calculator || resultOmega != nil) && piece.contains(UInt8(ascii: "=")))
    }

    /// Drafts up to `limit` tokens with the real context alone, has the masked context decode their
    /// positions in one batch, and keeps the longest prefix the steered choice agrees with, plus the
    /// steered token at the first disagreement (`Steering.swift`, "Speculative masked pass"). Returns
    /// the first of them; `chooseToken` hands out the rest.
    private func speculate(deferred: SequenceCache.Target, omega: Double, modulation: Bool, greedy: Bool,
                           limit: Int) throws -> (LlamaToken, Double)
    {
        let sampling = !greedy && !sampler.options.isGreedy
        let context = realPrompt + generated
        var realLogits = [cache.logits(slot.real)]
        // Sampling: each position's shaped real distribution, computed once, drafts from and verifies.
        var realDistributions: [[LlamaToken: Double]] = []
        var drafts: [LlamaToken] = []
        let length = min(draftLength, limit)
        while true {
            let token: LlamaToken
            if sampling {
                let p = realLogits[drafts.count].withUnsafeBufferPointer(sampler.distribution)
                realDistributions.append(p)
                token = Steering.sample(p, uniform: uniforms.nextUniform())
            } else {
                token = realLogits[drafts.count].withUnsafeBufferPointer(LlamaSampler.argmax)
            }
            drafts.append(token)
            if drafts.count >= length || endsDraft(token) { break }
            do {
                try cache.sync([.init(sequence: slot.real, tokens: context + drafts, wantsLogits: true)])
            } catch {
                guard error == .decodeFailed(code: 1) else { throw error }
                break  // the context is full: verify what was drafted
            }
            realLogits.append(cache.logits(slot.real))
        }
        var verification = deferred
        verification.tokens += drafts.dropLast()
        verification.logitsFrom = deferred.tokens.count - 1
        do {
            try cache.sync([verification])
        } catch {
            guard error == .decodeFailed(code: 1) else { throw error }
            // No room left for the masked context: the first drafted token goes unsteered.
            let probability = realLogits[0].withUnsafeBufferPointer { Steering.probability(of: drafts[0], logits: $0) }
            return (drafts[0], probability)
        }
        let maskedLogits = cache.collected[deferred.sequence] ?? []
        var accepted: [(token: LlamaToken, probability: Double)] = []
        var agreed = 0
        for (index, draft) in drafts.enumerated() where index < maskedLogits.count {
            let choice: LlamaToken = realLogits[index].withUnsafeBufferPointer { real in
                maskedLogits[index].withUnsafeBufferPointer { masked in
                    steered.withUnsafeMutableBufferPointer { output in
                        Steering.combine(real: real, masked: masked, omega: omega, modulation: modulation, into: output)
                        let steeredLogits = UnsafeBufferPointer(output)
                        guard sampling else { return LlamaSampler.argmax(steeredLogits) }
                        let p = realDistributions[index]
                        let q = sampler.distribution(steeredLogits)
                        if Steering.acceptsDraft(realProbability: p[draft] ?? 0, steeredProbability: q[draft] ?? 0,
                                                 uniform: uniforms.nextUniform())
                        {
                            return draft
                        }
                        return Steering.residualSample(real: p, steered: q, uniform: uniforms.nextUniform())
                    }
                }
            }
            let probability = realLogits[index].withUnsafeBufferPointer { Steering.probability(of: choice, logits: $0) }
            accepted.append((choice, probability))
            if choice != draft { break }
            agreed += 1
        }
        result.timings.draftsN += 1
        result.timings.draftedN += drafts.count
        result.timings.draftAcceptedN += agreed
        if agreed == drafts.count {
            if drafts.count == draftLength { draftLength = min(Self.maximumDraftLength, draftLength + 2) }
        } else {
            draftLength = max(2, (draftLength + agreed + 1) / 2)
        }
        verified = accepted
        verifiedAt = generated.count
        return takeVerified()
    }

    /// Picks the next token from the real logits, steered by the masked ones when ω ≠ 1.
    /// Returns the token and its probability under the real (unsteered) distribution.
    /// `greedy` takes the most likely steered token whatever the sampling options say.
    func nextToken(maskedSequence: Int32?, omega: Double, modulation: Bool, greedy: Bool = false) -> (LlamaToken, Double) {
        let real = cache.logits(slot.real)
        return real.withUnsafeBufferPointer { realBuffer in
            let token: LlamaToken
            if let maskedSequence {
                let masked = cache.logits(maskedSequence)
                token = masked.withUnsafeBufferPointer { maskedBuffer in
                    steered.withUnsafeMutableBufferPointer { output in
                        Steering.combine(real: realBuffer, masked: maskedBuffer, omega: omega, modulation: modulation, into: output)
                        let logits = UnsafeBufferPointer(output)
                        return greedy ? LlamaSampler.argmax(logits) : sampler.sample(logits)
                    }
                }
            } else {
                token = greedy ? LlamaSampler.argmax(realBuffer) : sampler.sample(realBuffer)
            }
            return (token, Steering.probability(of: token, logits: realBuffer))
        }
    }

    /// Appends a token's text to the transcript; returns the newly complete text.
    @discardableResult
    func appendText(_ token: LlamaToken) -> String {
        let text = textDecoder.append(model.piece(token))
        result.text += text
        return text
    }

    /// Exact arithmetic (`SolveRequest.calculator`).
    var calculator = false
    /// The ω of the value the model writes after an `=` (`SteeringOptions.resultOmega`, the strategy's
    /// default applied); nil: the line's own ω. When set, speculative drafts stop at `=`.
    var resultOmega: Double?

    /// The ω of the next token after `text` (the line, or the transcript, so far): `resultOmega` while it
    /// ends inside a value after `=` (`inValue`, where no draft may start), the line's ω otherwise.
    func nextTokenOmega(line omega: Double, after text: some StringProtocol) -> (omega: Double, inValue: Bool) {
        guard let resultOmega, Steering.isWritingResult(after: text) else { return (omega, false) }
        return (resultOmega, true)
    }

    /// With the calculator on and the text ending in an arithmetic expression and `=`, writes the value
    /// after it (as the decoder's own tokens, which the model then reads) and reports the calculation.
    /// Returns the text written.
    func calculate() throws -> String? {
        guard calculator else { return nil }
        let spaced = result.text.hasSuffix("= ")
        guard spaced || result.text.hasSuffix("="),
              let calculation = Calculator.result(endingWith: spaced ? String(result.text.dropLast()) : result.text)
        else { return nil }
        let text = (spaced ? "" : " ") + calculation.value
        try insert(text)
        result.timings.calculationsN += 1
        emit(.calculation(calculation))
        return text
    }

    /// Appends text the decoder itself inserts (headers), to the tokens and the transcript.
    func insert(_ text: String) throws {
        verified.removeAll()
        let tokens = try model.tokenize(text, addSpecial: false, parseSpecial: false)
        for token in tokens {
            generated.append(token)
            appendText(token)
        }
        result.timings.insertedN += tokens.count
    }

    // MARK: Free text: plain, cot, ps+, re2, spa, generate

    /// Free text, steered at `omega` when `masked` is given (values after `=` at `resultOmega`).
    func freeText(messages: [ChatMessage], masked: [ChatMessage]?, assistantPrefix: String, omega: Double,
                  modulation: Bool, maxTokens: Int, task: TaskType?) throws
    {
        realPrompt = try realPromptTokens(messages, assistantPrefix: assistantPrefix)
        if let masked { maskedPrompt = try promptTokens(masked, assistantPrefix: assistantPrefix) }
        try prefill(steered: masked != nil)
        let maskedSequence: Int32? = masked == nil ? nil : slot.questionMasked
        while true {
            try checkCancelled()
            if result.timings.predictedN >= maxTokens {
                result.timings.stopReason = .maxTokens
                break
            }
            let next = nextTokenOmega(line: omega, after: result.text)
            let (token, _) = try chooseToken(maskedSequence: maskedSequence, omega: next.omega, modulation: modulation,
                                             draftLimit: next.inValue ? nil : maxTokens - result.timings.predictedN)
            if model.isEndOfGeneration(token) { break }
            generated.append(token)
            result.timings.predictedN += 1
            let text = appendText(token)
            if !text.isEmpty { emit(.delta(section: .text, index: 0, text: text)) }
            if let written = try calculate() { emit(.delta(section: .text, index: 0, text: written)) }
            if result.timings.predictedN >= maxTokens {
                result.timings.stopReason = .maxTokens
                break
            }
            if !(try advance(maskedSequence: maskedSequence, maskedTokens: maskedSequence == nil ? [] : maskedPrompt + generated)) { break }
        }
        if let task { recordAnswer(task: task) }
    }

    /// Reads the final answer out of the transcript (the question's options help on `choice`), stores it
    /// in the result and reports it: the last thing every strategy with a task does.
    func recordAnswer(task: TaskType) {
        let answerText = AnswerExtractor.textAfterLastAnswerMarker(result.text)?.trimmingSpaces ?? ""
        let answer = AnswerRecord(text: answerText, extracted: AnswerExtractor.extract(result.text, task: task, question: result.question),
                                  task: task)
        result.answer = answer
        emit(.answer(answer))
    }

    /// Decodes the newest tokens of the real context and of the given masked context in one batch
    /// (with the adaptive masked pass, the real context alone: `chooseToken` decodes the masked one
    /// when a token needs it). Returns false (and records why) when the context is full.
    func advance(maskedSequence: Int32?, maskedTokens: [LlamaToken]) throws -> Bool {
        // Verified draft tokens are waiting: both contexts already hold them.
        if hasVerified { return true }
        var targets = [SequenceCache.Target(sequence: slot.real, tokens: realPrompt + generated, wantsLogits: true)]
        deferredMasked = nil
        if let maskedSequence {
            let target = SequenceCache.Target(sequence: maskedSequence, tokens: maskedTokens, wantsLogits: true)
            if defersMasked { deferredMasked = target } else { targets.append(target) }
        }
        do {
            try cache.sync(targets)
            return true
        } catch {
            // (A `catch .decodeFailed(code: 1)` pattern here crashes Swift 6.3.1's SIL optimizer.)
            guard error == .decodeFailed(code: 1) else { throw error }
            result.timings.stopReason = .contextFull
            return false
        }
    }
}

/// A small seeded generator of uniform draws (SplitMix64), so that speculative sampling repeats for a
/// given seed.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A draw in [0, 1).
    mutating func nextUniform() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
}
