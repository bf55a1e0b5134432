import JSON
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

// MARK: JSON

extension TokenAttention {
    /// One token as the daemon's result and `--jsonl` give it.
    public var jsonValue: JSONValue {
        [
            "index": .int(index), "token": .int(Int(token)), "text": .string(text),
            "waad": .double(waad), "fai": fai.map { .double($0) } ?? .null, "delta": .double(delta),
            "preplan": .bool(isPreplan), "anchor": .bool(isAnchor),
            "gamma": ["local_chunk": .double(gammaLocalChunk), "global_anchor": .double(gammaGlobalAnchor),
                      "coupled": .double(gammaCoupled)],
        ]
    }
}

extension AttentionAnalysisOptions {
    /// The settings as the result echoes them (after defaults are applied), under the names the
    /// `analyze` request's `options` take, so they can be sent back as they are.
    public func jsonValue(layers: [Int]) -> JSONValue {
        [
            "layers": .array(layers.map { .int($0) }), "localFraction": .double(localFraction),
            "globalFraction": .double(globalFraction), "waadWindow": .int(waadWindow),
            "faiWindow": [.int(faiWindowStart), .int(faiWindowEnd)], "preplanFraction": .double(preplanFraction),
            "anchorFraction": .double(anchorFraction), "gammaAmp": .double(gammaAmp),
            "tauWaadQuantile": .double(tauWaadQuantile), "tauDeltaQuantile": .double(tauDeltaQuantile),
            "alpha": .double(alpha), "lookback": .int(lookback),
        ]
    }
}

extension AttentionReportData {
    /// The whole analysis: settings, heads, thresholds, per-token records and cost.
    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "model": .string(model),
            "options": metrics.options.jsonValue(layers: layers),
            "heads_per_layer": .int(headsPerLayer), "kv_heads_per_layer": .int(kvHeadsPerLayer),
            "local_heads": .array(metrics.localHeads.map { .string(headName($0)) }),
            "global_heads": .array(metrics.globalHeads.map { .string(headName($0)) }),
            "tau_waad": .double(metrics.tauWaad), "tau_delta": .double(metrics.tauDelta),
            "prompt_tokens": .int(promptTokens), "response_tokens": .int(tokens.count),
            "preplan_count": .int(metrics.isPreplan.filter { $0 }.count),
            "anchor_count": .int(metrics.isAnchor.filter { $0 }.count),
            "tokens": .array(tokens.map(\.jsonValue)),
            "elapsed_ms": .double(elapsedMs),
        ]
        if let peakResidentBytes { object["peak_rss_mb"] = .double(Double(peakResidentBytes) / 1_048_576) }
        return .object(object)
    }
}
