import AttentionAnalysis
import Llama

/// The state of one request while it decodes: prompts, generated tokens, text, records and timings.
final class DecodingRun {
    let engine: Engine
    let slot: Slot
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

    init(engine: Engine, slot: Slot, sampling: SamplingOptions, cancellation: CancellationFlag,
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
    func execute(_ body: () async throws -> Void) async throws(DecoderError) -> SolveResult {
        engine.scheduler.join()
        defer {
            cache.clear(slot.sequences)
            if usesPromptCache { engine.promptCache.release() }
            engine.scheduler.leave()
        }
        do {
            try await body()
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
    func syncPromptCache() async throws {
        let prefix = try cacheablePrefix()
        guard prefix.count >= PromptCache.minimumLength else { return }
        let sequence = PromptCache.sequence
        switch engine.promptCache.claim(prefix) {
        case .unavailable:
            return
        case .ready:
            usesPromptCache = true
            cache.track(sequence, holding: prefix)
        case .fill:
            usesPromptCache = true
            cache.track(sequence, holding: [])
            do {
                try await cache.sync([SequenceCache.Target(sequence: sequence, tokens: prefix, wantsLogits: false)])
            } catch {
                engine.promptCache.finishFilling(nil)
                cache.forget(sequence)
                throw error
            }
            engine.promptCache.finishFilling(prefix)
        }
    }

    func promptTokens(_ messages: [ChatMessage], assistantPrefix: String) throws -> [LlamaToken] {
        let text = try model.applyChatTemplate(messages) + assistantPrefix
        return try model.tokenize(text, addSpecial: true, parseSpecial: true)
    }

    /// Decodes the prompts of the real and (if steered) masked contexts, sharing their common prefix.
    func prefill(steered: Bool) async throws {
        let capacity = engine.requestCapacity
        let needed = realPrompt.count + (steered ? maskedPrompt.count : 0)
        if realPrompt.count + 8 > capacity || needed > capacity {
            throw DecoderError.promptTooLong(tokens: needed, capacity: capacity)
        }
        emit(.start(StartInfo(strategy: result.strategy, model: model.description, promptTokens: realPrompt.count,
                              maskedPromptTokens: steered ? maskedPrompt.count : 0)))
        let start = clock.now
        try await syncPromptCache()
        var targets = [SequenceCache.Target(sequence: slot.real, tokens: realPrompt, wantsLogits: true)]
        if steered {
            targets.append(.init(sequence: slot.questionMasked, tokens: maskedPrompt, wantsLogits: true))
        }
        try await cache.sync(targets)
        result.timings.promptN = realPrompt.count
        result.timings.promptDecodedN = cache.decodedCount(slot.real) + cache.decodedCount(PromptCache.sequence)
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
    /// α of the plausibility constraint on steered tokens (`SteeringOptions.plausibility`; 0: off).
    var plausibility: Double = 0

    /// Takes the request's run-wide steering settings: how the masked context is decoded and the
    /// plausibility constraint (ω and the anchors change line by line and are passed per token).
    func adopt(_ steering: SteeringOptions) {
        maskedPass = steering.maskedPass
        skipMaskedAbove = steering.skipMaskedAbove
        plausibility = steering.plausibility
    }
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
                     draftLimit: Int? = nil) async throws -> (LlamaToken, Double)
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
            return try await speculate(deferred: deferred, omega: omega, modulation: modulation, greedy: greedy,
                                 limit: draftLimit)
        }
        do {
            try await cache.sync([deferred])
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
                           limit: Int) async throws -> (LlamaToken, Double)
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
                try await cache.sync([.init(sequence: slot.real, tokens: context + drafts, wantsLogits: true)])
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
            try await cache.sync([verification])
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
                        Steering.combine(real: real, masked: masked, omega: omega, modulation: modulation,
                                         plausibility: plausibility, into: output)
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
                        Steering.combine(real: realBuffer, masked: maskedBuffer, omega: omega, modulation: modulation,
                                         plausibility: plausibility, into: output)
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
                  modulation: Bool, maxTokens: Int, task: TaskType?) async throws
    {
        realPrompt = try realPromptTokens(messages, assistantPrefix: assistantPrefix)
        if let masked { maskedPrompt = try promptTokens(masked, assistantPrefix: assistantPrefix) }
        try await prefill(steered: masked != nil)
        let maskedSequence: Int32? = masked == nil ? nil : slot.questionMasked
        while true {
            try checkCancelled()
            if result.timings.predictedN >= maxTokens {
                result.timings.stopReason = .maxTokens
                break
            }
            let next = nextTokenOmega(line: omega, after: result.text)
            let (token, _) = try await chooseToken(maskedSequence: maskedSequence, omega: next.omega, modulation: modulation,
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
            if !(try await advance(maskedSequence: maskedSequence, maskedTokens: maskedSequence == nil ? [] : maskedPrompt + generated)) { break }
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
    func advance(maskedSequence: Int32?, maskedTokens: [LlamaToken]) async throws -> Bool {
        // Verified draft tokens are waiting: both contexts already hold them.
        if hasVerified { return true }
        var targets = [SequenceCache.Target(sequence: slot.real, tokens: realPrompt + generated, wantsLogits: true)]
        deferredMasked = nil
        if let maskedSequence {
            let target = SequenceCache.Target(sequence: maskedSequence, tokens: maskedTokens, wantsLogits: true)
            if defersMasked { deferredMasked = target } else { targets.append(target) }
        }
        do {
            try await cache.sync(targets)
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
