import Llama

/// What a batch of a few tokens costs on this machine against one `llama_decode` per token, measured
/// on the engine's own context when it is made, and the scheduling choice that follows from it.
///
/// Why: the answer differs between machines of the same type. On one 2-core VM a batch of two tokens
/// cost 2.6 single-token decodes (one call per token was faster); on another it cost 1.5 (the batch was
/// faster). Every self-anchor token is such a round (the real and the masked context), so a constant
/// tuned on one machine slows the decoder on the next. The measurement takes a few dozen decodes.
public struct BatchCalibration: Sendable, Equatable {
    /// Median milliseconds of one single-token decode.
    public var singleMs: Double
    /// Median milliseconds of one decode of n tokens (one per sequence), for n = 2…`measuredSizes`.
    public var batchMs: [Int: Double]
    /// Rounds of at most this many tokens are decoded one token per call (0: always one batch).
    public var smallRoundLimit: Int
    /// Median milliseconds of one single-token decode on half the threads (nil: one thread only); far
    /// below `singleMs` when another process already takes the cores (`ThreadGovernor`).
    public var reducedSingleMs: Double? = nil
    /// `smallRoundLimit` is the choice stored for this machine by an earlier engine
    /// (`BatchingChoiceStore`), not this measurement's.
    public var remembered = false
    /// This measurement's own choice (what `smallRoundLimit` would be without a stored one).
    public var measuredSmallRoundLimit: Int { Self.smallRoundLimit(singleMs: singleMs, batchMs: batchMs) }

    /// Round sizes measured; larger rounds are always batched (on every machine measured, a batch of
    /// four or more costs less than its tokens one by one).
    public static let measuredSizes = 2...4

    /// The rule: a round goes one token per call up to the largest measured size at which the batch
    /// costs more than its tokens decoded one by one.
    public static func smallRoundLimit(singleMs: Double, batchMs: [Int: Double]) -> Int {
        measuredSizes.filter { size in (batchMs[size] ?? 0) > Double(size) * singleMs }.max() ?? 0
    }

    /// How much a batch of `size` costs, in single decodes.
    public func cost(ofBatch size: Int) -> Double? { batchMs[size].map { $0 / singleMs } }

    /// Times single and batched decodes on `context`, which must be empty and have at least four
    /// sequences; it is emptied again afterwards.
    /// Every decode names its threads (all of them, or half): forced decodes are not timed by the
    /// context's thread governor, which measurements of the machine would skew.
    static func measure(context: LlamaContext, model: LlamaModel, repeats: Int = 3) throws(LlamaError) -> BatchCalibration {
        let all = context.options.effectiveThreads
        let sizes = measuredSizes
        let sequences = Int32(min(sizes.upperBound, context.options.sequences))
        defer { context.clearMemory() }
        let prompt = (try? model.tokenize(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 3),
                                          addSpecial: false)) ?? []
        let batch = LlamaBatch(capacity: max(prompt.count, sizes.upperBound))
        var position = Int32(0)
        if !prompt.isEmpty {
            batch.add(prompt, startingAt: 0, sequence: 0, logitsForLast: true)
            try context.decode(batch, threads: all)
            position = Int32(prompt.count)
        }
        for sequence in 1..<sequences { context.copyTokens(from: 0, to: sequence) }
        let token = prompt.last ?? 0
        let clock = ContinuousClock()
        var singles: [Double] = []
        var reducedSingles: [Double] = []
        let reduced = context.threadGovernor?.reduced
        var batched: [Int: [Double]] = [:]
        // Alternating, so that a slow spell of the machine hits both alike.
        for _ in 0..<repeats {
            for sequence in 0..<sequences {
                batch.clear()
                batch.add(token, position: position, sequences: [sequence], logits: true)
                let start = clock.now
                try context.decode(batch, threads: all)
                singles.append((clock.now - start).milliseconds)
                if let reduced {
                    context.removeTokens(sequence: sequence, from: position)
                    let start = clock.now
                    try context.decode(batch, threads: reduced)
                    reducedSingles.append((clock.now - start).milliseconds)
                }
            }
            for sequence in 0..<sequences { context.removeTokens(sequence: sequence, from: position) }
            for size in sizes where Int32(size) <= sequences {
                batch.clear()
                for sequence in 0..<Int32(size) { batch.add(token, position: position, sequences: [sequence], logits: true) }
                let start = clock.now
                try context.decode(batch, threads: all)
                batched[size, default: []].append((clock.now - start).milliseconds)
                for sequence in 0..<Int32(size) { context.removeTokens(sequence: sequence, from: position) }
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let singleMs = median(singles)
        let batchMs = batched.mapValues(median)
        let reducedSingleMs = reducedSingles.isEmpty ? nil : median(reducedSingles)
        if let reducedSingleMs { context.seedThreadGovernor(fullMs: singleMs, reducedMs: reducedSingleMs) }
        return BatchCalibration(singleMs: singleMs, batchMs: batchMs,
                                smallRoundLimit: smallRoundLimit(singleMs: singleMs, batchMs: batchMs),
                                reducedSingleMs: reducedSingleMs)
    }
}
