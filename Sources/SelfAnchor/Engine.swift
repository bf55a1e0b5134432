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
    /// A request field is unusable (an anchor not in the prompt, say).
    case invalidRequest(String)
    case llama(LlamaError)

    public var description: String {
        switch self {
        case .cancelled: return "cancelled"
        case .promptTooLong(let tokens, let capacity):
            return "the prompt has \(tokens) tokens but the context holds \(capacity)"
        case .invalidRequest(let message): return message
        case .llama(let error): return error.description
        }
    }
}

/// The resident model and its context: runs solves and steered generations one at a time.
///
/// Owns one `LlamaContext` whose KV cache holds three sequences per run — 0: the real context,
/// 1: the context with the question masked, 2: with the question and the current plan masked — and a
/// fourth, 3, that keeps the prompt prefix every request of a kind shares (chat template and system
/// prompt, up to where the question starts) between runs: the prompt cache.
public final class Engine: @unchecked Sendable {
    public let model: LlamaModel
    public let context: LlamaContext
    let cache: SequenceCache

    static let realSequence: Int32 = 0
    static let questionMaskedSequence: Int32 = 1
    static let planMaskedSequence: Int32 = 2
    /// Holds the cached prompt prefix between requests.
    static let promptCacheSequence: Int32 = 3
    /// Prefixes shorter than this are not worth caching.
    static let promptCacheMinimum = 16

    /// Reuse the shared prompt prefix across requests (on by default). Output does not depend on it:
    /// with or without a cached prefix, a request decodes the prefix into the same cells first.
    public var promptCacheEnabled = true

    /// Forgets the cached prompt prefix (the next request decodes it again).
    public func dropPromptCache() { cache.invalidateAll() }

    /// Context settings the engine uses unless told otherwise.
    public static var defaultContextOptions: ContextOptions {
        var options = ContextOptions()
        options.contextSize = 4096
        options.sequences = 4
        options.unifiedKV = true
        return options
    }

    /// The attention-reading context of `attention-anchor`, made on first use and kept.
    private var tracker: AttentionTracker?

    func attentionTracker() throws -> AttentionTracker {
        if let tracker { return tracker }
        let made: AttentionTracker
        do {
            made = try AttentionTracker(model: model, options: AttentionAnalysisOptions(), capacity: context.capacity,
                                        threads: context.options.threads)
        } catch {
            switch error {
            case .llama(let error): throw error
            default: throw DecoderError.invalidRequest("attention-anchor: \(error)")
            }
        }
        tracker = made
        return made
    }

    public init(model: LlamaModel, options: ContextOptions = Engine.defaultContextOptions) throws(LlamaError) {
        var options = options
        options.sequences = max(options.sequences, 4)
        options.unifiedKV = true
        self.model = model
        self.context = try LlamaContext(model: model, options: options)
        self.cache = SequenceCache(context: context)
    }

    /// Solves a question with the request's strategy, reporting events as they happen.
    public func solve(_ request: SolveRequest, cancellation: CancellationFlag = CancellationFlag(),
                      onEvent: @escaping (DecoderEvent) -> Void = { _ in }) throws(DecoderError) -> SolveResult
    {
        let run = DecodingRun(engine: self, sampling: request.sampling, cancellation: cancellation, emit: onEvent,
                              strategy: request.strategy.rawValue, question: request.question)
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
                let masked = try run.mask(messages, anchors: anchors, placeholder: request.placeholder)
                run.skipMaskedAbove = request.steering.skipMaskedAbove
                try run.freeText(messages: messages, masked: masked, assistantPrefix: prefix,
                                 omega: request.steering.stepOmega, modulation: request.steering.modulation,
                                 maxTokens: request.maxTokens, task: request.task)
            }
        }
    }

    /// SPA-steered generation for any conversation; unsteered when there are no anchors.
    public func generate(_ request: GenerateRequest, cancellation: CancellationFlag = CancellationFlag(),
                         onEvent: @escaping (DecoderEvent) -> Void = { _ in }) throws(DecoderError) -> SolveResult
    {
        let run = DecodingRun(engine: self, sampling: request.sampling, cancellation: cancellation, emit: onEvent,
                              strategy: request.anchors.isEmpty ? "generate" : "spa",
                              question: request.messages.last(where: { $0.role == "user" })?.content ?? "")
        return try run.execute {
            let masked = request.anchors.isEmpty
                ? nil : try run.mask(request.messages, anchors: request.anchors, placeholder: request.placeholder)
            try run.freeText(messages: request.messages, masked: masked, assistantPrefix: "", omega: request.omega,
                             modulation: request.modulation, maxTokens: request.maxTokens, task: nil)
        }
    }
}

/// The state of one request while it decodes: prompts, generated tokens, text, records and timings.
final class DecodingRun {
    let engine: Engine
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

    init(engine: Engine, sampling: SamplingOptions, cancellation: CancellationFlag, emit: @escaping (DecoderEvent) -> Void,
         strategy: String, question: String)
    {
        self.engine = engine
        self.model = engine.model
        self.cache = engine.cache
        self.sampler = LlamaSampler(options: sampling)
        self.cancellation = cancellation
        self.emit = emit
        self.result = SolveResult(strategy: strategy, question: question, text: "", steps: [], answer: nil, timings: Timings())
        self.steered = Array(repeating: 0, count: engine.model.vocabularySize)
    }

    /// Runs `body` with cancellation wired into llama_decode, turning failures into `DecoderError`s and
    /// always finishing with the `end` event's timings.
    func execute(_ body: () throws -> Void) throws(DecoderError) -> SolveResult {
        engine.context.shouldAbort = { [cancellation] in cancellation.isCancelled }
        defer { engine.context.shouldAbort = nil }
        // Start from a KV cache that holds nothing but the cached prompt prefix, in the first cells: reused
        // cells elsewhere would change the order in which attention sums over them, and greedy decoding
        // would no longer repeat itself exactly. Every request thus sees the same layout.
        if engine.promptCacheEnabled {
            cache.clearAll(except: Engine.promptCacheSequence)
        } else {
            cache.invalidateAll()
        }
        cache.resetCounters()
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

    func mask(_ messages: [ChatMessage], anchors: [String], placeholder: String) throws(DecoderError) -> [ChatMessage] {
        do {
            return try MaskedPrompt.mask(messages, anchors: anchors, placeholder: placeholder)
        } catch {
            switch error {
            case .emptyAnchor: throw .invalidRequest("anchors: an anchor is an empty string")
            case .anchorNotFound(let anchor): throw .invalidRequest("anchors: \"\(anchor)\" does not occur in the prompt")
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

    /// Makes the prompt-cache sequence hold this request's cacheable prefix. When it holds another one,
    /// the whole cache is emptied first, so that the prefix lands in the first cells as it always does.
    func syncPromptCache() throws {
        guard engine.promptCacheEnabled else { return }
        let prefix = try cacheablePrefix()
        guard prefix.count >= Engine.promptCacheMinimum else { return }
        let sequence = Engine.promptCacheSequence
        if cache.cached[Int(sequence)] != prefix {
            cache.invalidateAll()
            try cache.sync([SequenceCache.Target(sequence: sequence, tokens: prefix, wantsLogits: false)])
        }
    }

    func promptTokens(_ messages: [ChatMessage], assistantPrefix: String) throws -> [LlamaToken] {
        let text = try model.applyChatTemplate(messages) + assistantPrefix
        return try model.tokenize(text, addSpecial: true, parseSpecial: true)
    }

    /// Decodes the prompts of the real and (if steered) masked contexts, sharing their common prefix.
    func prefill(steered: Bool) throws {
        let capacity = engine.context.capacity
        let needed = realPrompt.count + (steered ? maskedPrompt.count : 0)
        if realPrompt.count + 8 > capacity || needed > capacity {
            throw DecoderError.promptTooLong(tokens: needed, capacity: capacity)
        }
        emit(.start(StartInfo(strategy: result.strategy, model: model.description, promptTokens: realPrompt.count,
                              maskedPromptTokens: steered ? maskedPrompt.count : 0)))
        let start = clock.now
        try syncPromptCache()
        var targets = [SequenceCache.Target(sequence: Engine.realSequence, tokens: realPrompt, wantsLogits: true)]
        if steered {
            targets.append(.init(sequence: Engine.questionMaskedSequence, tokens: maskedPrompt, wantsLogits: true))
        }
        try cache.sync(targets)
        result.timings.promptN = realPrompt.count
        result.timings.promptDecodedN = cache.decodedCounts[Int(Engine.realSequence)]
            + cache.decodedCounts[Int(Engine.promptCacheSequence)]
        result.timings.promptMs = (clock.now - start).milliseconds
        generationStart = clock.now
    }

    private func finishTimings() {
        if let generationStart { result.timings.predictedMs = (clock.now - generationStart).milliseconds }
        result.timings.maskedN = cache.decodedCounts.enumerated()
            .filter { $0.offset == Int(Engine.questionMaskedSequence) || $0.offset == Int(Engine.planMaskedSequence) }
            .reduce(0) { $0 + $1.element }
        let tail = textDecoder.finish()
        result.text += tail
    }

    // MARK: Tokens and text

    /// The masked context `advance` left behind (adaptive masked pass), decoded only when a token needs it.
    private var deferredMasked: SequenceCache.Target?
    /// The adaptive masked pass's threshold for this run (nil: the masked context runs on every token).
    var skipMaskedAbove: Double?

    /// Picks the next token like `nextToken`. With the adaptive masked pass on, a token whose real
    /// top-1 probability reaches the threshold is taken from the real logits alone, and the masked
    /// context is not decoded; otherwise the masked context first catches up (every token it missed,
    /// in one batch). See `Steering.swift` for the rule.
    func chooseToken(maskedSequence: Int32?, omega: Double, modulation: Bool, greedy: Bool = false) throws
        -> (LlamaToken, Double)
    {
        guard let maskedSequence, let threshold = skipMaskedAbove, let deferred = deferredMasked,
              deferred.sequence == maskedSequence
        else {
            return nextToken(maskedSequence: maskedSequence, omega: omega, modulation: modulation, greedy: greedy)
        }
        let top = cache.logits[Int(Engine.realSequence)].withUnsafeBufferPointer(Steering.topProbability)
        if top.probability >= threshold {
            result.timings.maskedSkippedN += 1
            return nextToken(maskedSequence: nil, omega: 1, modulation: false, greedy: greedy)
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

    /// Picks the next token from the real logits, steered by the masked ones when ω ≠ 1.
    /// Returns the token and its probability under the real (unsteered) distribution.
    /// `greedy` takes the most likely steered token whatever the sampling options say.
    func nextToken(maskedSequence: Int32?, omega: Double, modulation: Bool, greedy: Bool = false) -> (LlamaToken, Double) {
        let real = cache.logits[Int(Engine.realSequence)]
        return real.withUnsafeBufferPointer { realBuffer in
            let token: LlamaToken
            if let maskedSequence {
                let masked = cache.logits[Int(maskedSequence)]
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

    /// Appends text the decoder itself inserts (headers), to the tokens and the transcript.
    func insert(_ text: String) throws {
        let tokens = try model.tokenize(text, addSpecial: false, parseSpecial: false)
        for token in tokens {
            generated.append(token)
            appendText(token)
        }
        result.timings.insertedN += tokens.count
    }

    // MARK: Free text: plain, cot, ps+, re2, spa, generate

    func freeText(messages: [ChatMessage], masked: [ChatMessage]?, assistantPrefix: String, omega: Double,
                  modulation: Bool, maxTokens: Int, task: TaskType?) throws
    {
        realPrompt = try realPromptTokens(messages, assistantPrefix: assistantPrefix)
        if let masked { maskedPrompt = try promptTokens(masked, assistantPrefix: assistantPrefix) }
        try prefill(steered: masked != nil)
        let maskedSequence: Int32? = masked == nil ? nil : Engine.questionMaskedSequence
        while true {
            try checkCancelled()
            if result.timings.predictedN >= maxTokens {
                result.timings.stopReason = .maxTokens
                break
            }
            let (token, _) = try chooseToken(maskedSequence: maskedSequence, omega: omega, modulation: modulation)
            if model.isEndOfGeneration(token) { break }
            generated.append(token)
            result.timings.predictedN += 1
            let text = appendText(token)
            if !text.isEmpty { emit(.delta(section: .text, index: 0, text: text)) }
            if result.timings.predictedN >= maxTokens {
                result.timings.stopReason = .maxTokens
                break
            }
            if !(try advance(maskedSequence: maskedSequence, maskedTokens: maskedSequence == nil ? [] : maskedPrompt + generated)) { break }
        }
        if let task {
            let answerText = AnswerExtractor.textAfterLastAnswerMarker(result.text)?.trimmingSpaces ?? ""
            let answer = AnswerRecord(text: answerText, extracted: AnswerExtractor.extract(result.text, task: task), task: task)
            result.answer = answer
            emit(.answer(answer))
        }
    }

    /// Decodes the newest tokens of the real context and of the given masked context in one batch
    /// (with the adaptive masked pass, the real context alone: `chooseToken` decodes the masked one
    /// when a token needs it). Returns false (and records why) when the context is full.
    func advance(maskedSequence: Int32?, maskedTokens: [LlamaToken]) throws -> Bool {
        var targets = [SequenceCache.Target(sequence: Engine.realSequence, tokens: realPrompt + generated, wantsLogits: true)]
        deferredMasked = nil
        if let maskedSequence {
            let target = SequenceCache.Target(sequence: maskedSequence, tokens: maskedTokens, wantsLogits: true)
            if skipMaskedAbove != nil { deferredMasked = target } else { targets.append(target) }
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
