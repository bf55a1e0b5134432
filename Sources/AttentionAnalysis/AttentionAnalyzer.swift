import Llama

/// One response token with its attention metrics: what `analyze` returns per token.
public struct TokenAttention: Sendable, Equatable {
    /// Index in the response (0-based).
    public var index: Int
    public var token: LlamaToken
    /// The token's text. A character split over several tokens is given whole to the token that completes it.
    public var text: String
    public var waad: Double
    /// nil where FAI's window is empty (the last H_lo tokens).
    public var fai: Double?
    public var delta: Double
    public var isPreplan: Bool
    public var isAnchor: Bool
    public var gammaLocalChunk: Double
    public var gammaGlobalAnchor: Double
    public var gammaCoupled: Double
}

/// The analysis of one text: per-token metrics plus what was measured to get them.
public struct AttentionReportData: Sendable {
    public var model: String
    public var layers: [Int]
    public var headsPerLayer: Int
    public var kvHeadsPerLayer: Int
    public var promptTokens: Int
    public var tokens: [TokenAttention]
    public var metrics: AttentionMetrics
    /// Wall time of the forward pass and the folding, in milliseconds.
    public var elapsedMs: Double
    /// The process's peak resident memory after the analysis (VmHWM), when known.
    public var peakResidentBytes: Int?

    /// "layer.head" names of the local and global heads.
    public func headName(_ slot: Int) -> String { "\(layers[slot / headsPerLayer]).\(slot % headsPerLayer)" }
}

/// Analyses a finished text (prompt plus response) with one extra forward pass: the entry point of
/// `selfanchor analyze` and the daemon's `analyze` method.
public enum AttentionAnalyzer {
    /// Runs the model over `prompt + response` with attention read from the chosen layers.
    public static func analyze(model: LlamaModel, prompt: [LlamaToken], response: [LlamaToken],
                               options: AttentionAnalysisOptions = AttentionAnalysisOptions(), threads: Int = 0,
                               shouldAbort: (() -> Bool)? = nil) throws(AttentionError) -> AttentionReportData
    {
        guard !response.isEmpty else { throw .emptyResponse }
        let total = prompt.count + response.count
        let limit = model.trainingContextLength > 0 ? model.trainingContextLength : total
        if total > limit { throw .tooLong(tokens: total, capacity: limit) }
        let clock = ContinuousClock()
        let start = clock.now
        let tracker = try AttentionTracker(model: model, options: options, capacity: total, threads: threads)
        tracker.shouldAbort = shouldAbort
        tracker.reset(responseStart: prompt.count)
        try tracker.update(to: prompt + response, responseStart: prompt.count)
        let metrics = tracker.metrics()
        let elapsed = (clock.now - start).milliseconds

        var decoder = UTF8StreamDecoder()
        var tokens: [TokenAttention] = []
        tokens.reserveCapacity(response.count)
        for (index, token) in response.enumerated() {
            var text = decoder.append(model.piece(token))
            if index == response.count - 1 { text += decoder.finish() }
            tokens.append(TokenAttention(
                index: index, token: token, text: text, waad: metrics.waad[index],
                fai: metrics.faiDefined[index] ? metrics.fai[index] : nil, delta: metrics.delta[index],
                isPreplan: metrics.isPreplan[index], isAnchor: metrics.isAnchor[index],
                gammaLocalChunk: metrics.gammaLocalChunk[index], gammaGlobalAnchor: metrics.gammaGlobalAnchor[index],
                gammaCoupled: metrics.gammaCoupled[index]))
        }
        return AttentionReportData(model: model.description, layers: tracker.layers, headsPerLayer: model.headCount,
                                   kvHeadsPerLayer: model.kvHeadCount, promptTokens: prompt.count, tokens: tokens,
                                   metrics: metrics, elapsedMs: elapsed, peakResidentBytes: peakResidentBytes())
    }
}
