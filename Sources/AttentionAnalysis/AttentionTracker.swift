import Llama

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the model over a growing token sequence with attention read from the chosen layers, and folds
/// the response rows into an `AttentionAccumulator` as they are computed.
///
/// Exists for both uses of attention: `analyze` feeds a whole text once; the `attention-anchor`
/// decoder feeds the running generation a line at a time, and only the new tokens are decoded. Owns a
/// one-sequence context with flash attention off (so cell c holds position c) and its tap.
public final class AttentionTracker {
    public let model: LlamaModel
    public let options: AttentionAnalysisOptions
    public let layers: [Int]
    private let context: LlamaContext
    private let batch: LlamaBatch
    private let state: State
    /// Tokens decoded so far.
    public private(set) var tokens: [LlamaToken] = []

    /// What the tap's handler writes into: the accumulator and where the current micro-batch starts.
    private final class State {
        var accumulator: AttentionAccumulator
        var batchStart = 0
        var slots: [Int: Int] = [:]
        var headsPerLayer = 0
        init(accumulator: AttentionAccumulator) { self.accumulator = accumulator }
    }

    /// A tracker whose context holds up to `capacity` tokens (threads as `ContextOptions` has them).
    /// Throws for options the model cannot use.
    public init(model: LlamaModel, options: AttentionAnalysisOptions, capacity: Int, threads: Int = 0,
                adaptiveThreads: Bool = true, microBatch: Int = 128) throws(AttentionError)
    {
        if let problem = options.problem(modelLayers: model.layerCount) {
            throw .invalidOption(problem.setting, problem.message)
        }
        self.model = model
        self.options = options
        layers = options.resolvedLayers(modelLayers: model.layerCount)
        let heads = model.headCount
        let state = State(accumulator: AttentionAccumulator(options: options, responseStart: 0,
                                                           headCount: layers.count * heads))
        state.headsPerLayer = heads
        for (slot, layer) in layers.enumerated() { state.slots[layer] = slot }
        self.state = state
        let tap = AttentionTap(layers: layers, queryHeads: heads) { probabilities in
            guard let slot = state.slots[probabilities.layer] else { return }
            let start = state.accumulator.responseStart
            for query in 0..<probabilities.queryCount {
                let position = state.batchStart + query
                guard position >= start else { continue }
                for head in 0..<probabilities.headCount {
                    state.accumulator.add(head: slot * state.headsPerLayer + head, position: position,
                                          probabilities: probabilities.row(head: head, query: query))
                }
            }
        }
        var contextOptions = ContextOptions()
        contextOptions.contextSize = max(256, (capacity + 255) / 256 * 256)
        contextOptions.batchSize = microBatch
        contextOptions.sequences = 1
        contextOptions.unifiedKV = false
        contextOptions.threads = threads
        contextOptions.adaptiveThreads = adaptiveThreads
        do {
            context = try LlamaContext(model: model, options: contextOptions, attention: tap)
        } catch {
            throw .llama(error)
        }
        batch = LlamaBatch(capacity: microBatch)
    }

    /// Token slots of the context.
    public var capacity: Int { context.capacity }

    /// Polled inside decodes; returning true stops the current `extend` with `AttentionError.cancelled`.
    public var shouldAbort: (() -> Bool)? {
        get { context.shouldAbort }
        set { context.shouldAbort = newValue }
    }

    /// Forgets everything and starts a new text whose response begins at absolute position `responseStart`.
    public func reset(responseStart: Int) {
        context.clearMemory()
        tokens = []
        state.accumulator = AttentionAccumulator(options: options, responseStart: responseStart,
                                                 headCount: layers.count * model.headCount)
    }

    /// Where the response begins.
    public var responseStart: Int { state.accumulator.responseStart }

    /// Brings the context to `newTokens`, decoding only what follows the tokens already decoded. When
    /// `newTokens` does not extend them (or the response start moves), everything is decoded afresh.
    public func update(to newTokens: [LlamaToken], responseStart: Int) throws(AttentionError) {
        if responseStart != self.responseStart || newTokens.count < tokens.count
            || !newTokens.starts(with: tokens)
        {
            reset(responseStart: responseStart)
        }
        guard newTokens.count > tokens.count else { return }
        if newTokens.count > context.capacity {
            throw .tooLong(tokens: newTokens.count, capacity: context.capacity)
        }
        var position = tokens.count
        while position < newTokens.count {
            let end = min(newTokens.count, position + batch.capacity)
            batch.clear()
            batch.add(newTokens[position..<end], startingAt: Int32(position), sequence: 0, logitsForLast: true)
            state.batchStart = position
            do {
                try context.decode(batch)
            } catch {
                // The cache state after a failed decode is unknown: start over next time.
                reset(responseStart: responseStart)
                if error == .decodeAborted { throw .cancelled }
                throw .llama(error)
            }
            tokens.append(contentsOf: newTokens[position..<end])
            position = end
        }
    }

    /// The metrics of the response decoded so far.
    public func metrics() -> AttentionMetrics {
        state.accumulator.metrics(length: max(0, tokens.count - responseStart))
    }

    /// d_h of every tracked head so far.
    public var headDistances: [Double] { state.accumulator.headDistances }
}

/// Why an attention analysis could not run.
public enum AttentionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A setting that cannot be used with this model, and why.
    case invalidOption(AttentionAnalysisOptions.Setting, String)
    case tooLong(tokens: Int, capacity: Int)
    case emptyResponse
    case cancelled
    case llama(LlamaError)

    public var description: String {
        switch self {
        case .invalidOption(let setting, let message): return "\(setting.rawValue): \(message)"
        case .tooLong(let tokens, let capacity):
            return "the text has \(tokens) tokens but the analysis context holds \(capacity)"
        case .emptyResponse: return "the text to analyse is empty"
        case .cancelled: return "cancelled"
        case .llama(let error): return error.description
        }
    }
}

/// The process's peak resident memory (VmHWM), in bytes; nil where /proc is unavailable.
public func peakResidentBytes() -> Int? {
    guard let file = fopen("/proc/self/status", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmHWM:") {
            let digits = text.drop(while: { !$0.isNumber }).prefix(while: \.isNumber)
            return Int(digits).map { $0 * 1024 }
        }
    }
    return nil
}
