// The math of "Attention Illuminates LLM Reasoning: The Preplan-and-Anchor Rhythm" (arXiv 2510.13554),
// all in this file. Notation: the response has N tokens t = 0..<N (row/column indices below are
// response indices; the prompt precedes them); A_h[t,s] is head h's attention from response token t to
// any earlier token s (prompt included), at absolute distance t − s.
//
//   d_h        = mean over rows t of Σ_s A_h[t,s]·(t−s)                  (head's mean look-back distance)
//   local      = the heads in the bottom `localFraction` by d_h; global = the top `globalFraction`
//   WAAD_t     = Σ_s Ā_loc[t,s]·min(t−s, W)                              (W = waadWindow = 10)
//   FAI_s      = mean of Ā_glob[t,s] over t ∈ [s+H_lo, min(N−1, s+H_hi)]  (H_lo = 10, H_hi = 100)
//                — a token whose window is empty (s > N−1−H_lo) gets FAI 0 and `faiDefined` false;
//                  it is never an anchor.
//   Δ_t        = |WAAD_t − WAAD_{t+1}| (Δ_{N−1} = 0)
//   preplan    = the top `preplanFraction` of t ∈ 0..<N−1 by Δ_t; anchor = the top `anchorFraction` of
//                the tokens with a defined FAI, by FAI (ties: the earlier token)
//   credit γ_t, with boost b = γ_amp − 1:
//     local-chunk   γ = 1 + b·[t preplan]
//     global-anchor γ = 1 + b·[t anchor]
//     coupled       an anchor t is locally dominated when WAAD_t ≤ τ_waad and max_{k=1..K} Δ_{t−k} ≥ τ_Δ;
//                   a dominated anchor gets (1−α)·b, the token t−k with that largest Δ (its
//                   introducing preplan token) gets α·b (summed over the anchors it introduces, γ ≤ γ_amp);
//                   other anchors get b, other tokens nothing.
//     The paper leaves τ_waad, τ_Δ, α and the introducing token open. Ours: τ_waad = the median WAAD of
//     the response, τ_Δ = the 60th percentile of Δ (the preplan cut at the default 40%), α = 0.5, K = 3.
//
// Every quantity is linear in A, so maps are never held: each head's rows are folded into per-head
// vectors (its WAAD contributions and FAI column sums) as they arrive, and the head split is applied
// at the end by averaging those vectors over the chosen heads.

/// The analysis settings: the paper's values by default, and our choices where it gives none.
public struct AttentionAnalysisOptions: Sendable, Equatable {
    /// Layers to read; nil: `layerCount` evenly spaced over the middle third, ⌊L/3⌋…⌊2L/3⌋.
    public var layers: [Int]?
    public var layerCount = 5
    public var localFraction = 0.3
    public var globalFraction = 0.3
    /// W of WAAD.
    public var waadWindow = 10
    /// H_lo and H_hi of FAI's window, in tokens after s.
    public var faiWindowStart = 10
    public var faiWindowEnd = 100
    public var preplanFraction = 0.4
    public var anchorFraction = 0.4
    public var gammaAmp = 1.5
    /// τ_waad as a quantile of the response's WAAD values.
    public var tauWaadQuantile = 0.5
    /// τ_Δ as a quantile of the response's Δ values.
    public var tauDeltaQuantile = 0.6
    /// α: the share of a dominated anchor's boost that goes to its introducing preplan token.
    public var alpha = 0.5
    /// K: how many tokens before an anchor are searched for its introducing preplan token.
    public var lookback = 3

    public init() {}

    /// The layers read for a model with `modelLayers` layers.
    public func resolvedLayers(modelLayers: Int) -> [Int] {
        if let layers { return layers }
        return Self.middleThird(modelLayers: modelLayers, count: layerCount)
    }

    /// `count` layers evenly spaced from ⌊L/3⌋ to ⌊2L/3⌋ (inclusive), without repeats.
    public static func middleThird(modelLayers: Int, count: Int) -> [Int] {
        let low = modelLayers / 3
        let high = min(modelLayers - 1, 2 * modelLayers / 3)
        guard count > 1, high > low else { return [low] }
        var layers: [Int] = []
        for index in 0..<count {
            let layer = low + Int((Double(index) * Double(high - low) / Double(count - 1)).rounded())
            if layers.last != layer { layers.append(layer) }
        }
        return layers
    }

    /// The settings, by the names requests and results use for them.
    public enum Setting: String, Sendable, CaseIterable {
        case layers, layerCount, localFraction, globalFraction, preplanFraction, anchorFraction, tauWaadQuantile,
             tauDeltaQuantile, alpha, waadWindow, faiWindow, gammaAmp, lookback
    }

    /// The first setting that cannot be used with a model of `modelLayers` layers, and why.
    public func problem(modelLayers: Int) -> (setting: Setting, message: String)? {
        if let layers {
            if layers.isEmpty { return (.layers, "give at least one layer") }
            if let bad = layers.first(where: { $0 < 0 || $0 >= modelLayers }) {
                return (.layers, "\(bad) is not a layer of this model (0…\(modelLayers - 1))")
            }
        } else if layerCount < 1 {
            return (.layerCount, "must be at least 1")
        }
        for (setting, value) in [(Setting.localFraction, localFraction), (.globalFraction, globalFraction),
                                 (.preplanFraction, preplanFraction), (.anchorFraction, anchorFraction),
                                 (.tauWaadQuantile, tauWaadQuantile), (.tauDeltaQuantile, tauDeltaQuantile), (.alpha, alpha)]
        where !(value >= 0 && value <= 1) {
            return (setting, "must be between 0 and 1, got \(value)")
        }
        if waadWindow < 1 { return (.waadWindow, "must be at least 1") }
        if faiWindowStart < 1 || faiWindowEnd < faiWindowStart {
            return (.faiWindow, "needs 1 ≤ start ≤ end, got \(faiWindowStart)…\(faiWindowEnd)")
        }
        if !(gammaAmp >= 1 && gammaAmp.isFinite) { return (.gammaAmp, "must be a finite number ≥ 1") }
        if lookback < 1 { return (.lookback, "must be at least 1") }
        return nil
    }
}

/// Folds attention rows into the per-head sums the metrics need, one row at a time.
///
/// Exists so that a 4k-token text can be analysed without holding any attention map: memory is
/// O(heads × N), not O(heads × N²). Rows may arrive in any order, but each (head, row) once.
public struct AttentionAccumulator: Sendable {
    public let options: AttentionAnalysisOptions
    /// Absolute position of the first response token (the prompt's length).
    public let responseStart: Int
    /// Heads tracked: layers read × query heads per layer.
    public let headCount: Int
    /// Σ over rows of Σ_s A[t,s]·(t−s), per head.
    private var distanceSums: [Double]
    /// Rows folded in, per head.
    private var rowCounts: [Int]
    /// Σ_s A[t,s]·min(t−s, W) per head and response row (head-major).
    private var waad: [[Double]]
    /// Σ over window rows t of A[t,s], per head and response column.
    private var faiSums: [[Double]]

    public init(options: AttentionAnalysisOptions, responseStart: Int, headCount: Int) {
        self.options = options
        self.responseStart = responseStart
        self.headCount = headCount
        distanceSums = Array(repeating: 0, count: headCount)
        rowCounts = Array(repeating: 0, count: headCount)
        waad = Array(repeating: [], count: headCount)
        faiSums = Array(repeating: [], count: headCount)
    }

    /// Folds one row: head `head`'s attention from the token at absolute position `position`
    /// (≥ `responseStart`), where `probabilities[c]` is the weight on absolute position `c`. Entries
    /// past `position` are ignored (they are the future, which causal attention gives weight 0).
    public mutating func add(head: Int, position: Int, probabilities: UnsafeBufferPointer<Float>) {
        precondition(position >= responseStart, "only response rows are folded in")
        let row = position - responseStart
        let last = min(position, probabilities.count - 1)
        let window = options.waadWindow
        var distance = 0.0
        var windowed = 0.0
        if last >= 0 {
            // Σ A·min(t−s, W): cells further than W away all weigh W.
            var far = 0.0
            var nearWeighted = 0.0
            let split = position - window  // s ≤ split: distance ≥ W
            var s = 0
            while s <= last {
                let a = Double(probabilities[s])
                distance += a * Double(position - s)
                if s <= split { far += a } else { nearWeighted += a * Double(position - s) }
                s += 1
            }
            windowed = far * Double(window) + nearWeighted
        }
        distanceSums[head] += distance
        rowCounts[head] += 1
        Self.store(windowed, at: row, in: &waad[head])
        // FAI: this row lies in the window of every response column s with s+H_lo ≤ t ≤ s+H_hi.
        let firstColumn = max(responseStart, position - options.faiWindowEnd)
        let lastColumn = min(last, position - options.faiWindowStart)
        if firstColumn <= lastColumn {
            if faiSums[head].count <= lastColumn - responseStart {
                faiSums[head].append(contentsOf: repeatElement(0, count: lastColumn - responseStart + 1 - faiSums[head].count))
            }
            faiSums[head].withUnsafeMutableBufferPointer { sums in
                for s in firstColumn...lastColumn { sums[s - responseStart] += Double(probabilities[s]) }
            }
        }
    }

    private static func store(_ value: Double, at index: Int, in vector: inout [Double]) {
        if vector.count <= index { vector.append(contentsOf: repeatElement(0, count: index + 1 - vector.count)) }
        vector[index] = value
    }

    /// Mean look-back distance d_h per head, over the rows folded in so far.
    public var headDistances: [Double] {
        (0..<headCount).map { rowCounts[$0] > 0 ? distanceSums[$0] / Double(rowCounts[$0]) : 0 }
    }

    /// The metrics of a response of `length` tokens (default: the rows folded in so far).
    public func metrics(length: Int? = nil) -> AttentionMetrics {
        let n = length ?? (waad.map(\.count).max() ?? 0)
        let distances = headDistances
        let order = (0..<headCount).sorted { (distances[$0], $0) < (distances[$1], $1) }
        let localCount = headCount == 0 ? 0 : max(1, Int((Double(headCount) * options.localFraction).rounded()))
        let globalCount = headCount == 0 ? 0 : max(1, Int((Double(headCount) * options.globalFraction).rounded()))
        let local = Array(order.prefix(localCount)).sorted()
        let global = Array(order.suffix(globalCount)).sorted()

        var waadValues = [Double](repeating: 0, count: n)
        for head in local {
            for (t, value) in waad[head].prefix(n).enumerated() { waadValues[t] += value }
        }
        if !local.isEmpty { waadValues = waadValues.map { $0 / Double(local.count) } }

        var faiValues = [Double](repeating: 0, count: n)
        var faiDefined = [Bool](repeating: false, count: n)
        for s in 0..<n {
            let windowEnd = min(n - 1, s + options.faiWindowEnd)
            let rows = windowEnd - (s + options.faiWindowStart) + 1
            guard rows > 0, !global.isEmpty else { continue }
            faiDefined[s] = true
            var sum = 0.0
            for head in global where s < faiSums[head].count { sum += faiSums[head][s] }
            faiValues[s] = sum / Double(global.count) / Double(rows)
        }
        return AttentionMetrics(options: options, headDistances: distances, localHeads: local, globalHeads: global,
                                waad: waadValues, fai: faiValues, faiDefined: faiDefined)
    }
}

/// WAAD, FAI, preplan and anchor tokens and the three credit weightings of one response.
public struct AttentionMetrics: Sendable {
    public let options: AttentionAnalysisOptions
    /// d_h per tracked head (index: layer slot × heads per layer + head).
    public let headDistances: [Double]
    public let localHeads: [Int]
    public let globalHeads: [Int]
    public let waad: [Double]
    public let fai: [Double]
    /// False where FAI's window is empty (the last H_lo tokens).
    public let faiDefined: [Bool]
    /// Δ_t = |WAAD_t − WAAD_{t+1}|, 0 for the last token.
    public let delta: [Double]
    public let isPreplan: [Bool]
    public let isAnchor: [Bool]
    /// τ_waad and τ_Δ as resolved from their quantiles.
    public let tauWaad: Double
    public let tauDelta: Double
    public let gammaLocalChunk: [Double]
    public let gammaGlobalAnchor: [Double]
    public let gammaCoupled: [Double]
    /// For each anchor judged locally dominated: its index and its introducing token's index.
    public let dominatedAnchors: [(anchor: Int, introducer: Int)]

    public var count: Int { waad.count }

    public init(options: AttentionAnalysisOptions, headDistances: [Double], localHeads: [Int], globalHeads: [Int],
                waad: [Double], fai: [Double], faiDefined: [Bool])
    {
        self.options = options
        self.headDistances = headDistances
        self.localHeads = localHeads
        self.globalHeads = globalHeads
        self.waad = waad
        self.fai = fai
        self.faiDefined = faiDefined
        let n = waad.count
        let delta = (0..<n).map { $0 + 1 < n ? abs(waad[$0] - waad[$0 + 1]) : 0 }
        self.delta = delta

        isPreplan = Self.top(fraction: options.preplanFraction, of: Array(0..<max(0, n - 1)), by: delta, count: n)
        isAnchor = Self.top(fraction: options.anchorFraction, of: (0..<n).filter { faiDefined[$0] }, by: fai, count: n)

        tauWaad = Self.quantile(waad, options.tauWaadQuantile)
        tauDelta = Self.quantile(Array(delta.prefix(max(0, n - 1))), options.tauDeltaQuantile)
        let boost = options.gammaAmp - 1
        gammaLocalChunk = isPreplan.map { 1 + boost * ($0 ? 1 : 0) }
        gammaGlobalAnchor = isAnchor.map { 1 + boost * ($0 ? 1 : 0) }

        var coupled = [Double](repeating: 0, count: n)
        var dominated: [(anchor: Int, introducer: Int)] = []
        for t in 0..<n where isAnchor[t] {
            var introducer: Int?
            for k in 1...options.lookback where t - k >= 0 {
                if introducer == nil || delta[t - k] > delta[introducer!] { introducer = t - k }
            }
            if let introducer, waad[t] <= tauWaad, delta[introducer] >= tauDelta {
                coupled[t] += (1 - options.alpha)
                coupled[introducer] += options.alpha
                dominated.append((t, introducer))
            } else {
                coupled[t] += 1
            }
        }
        gammaCoupled = coupled.map { 1 + boost * min(1, $0) }
        dominatedAnchors = dominated
    }

    /// Flags the top `fraction` of `candidates` by `values` (rounded to the nearest count; ties: the earlier index).
    static func top(fraction: Double, of candidates: [Int], by values: [Double], count n: Int) -> [Bool] {
        var flags = [Bool](repeating: false, count: n)
        let k = Int((Double(candidates.count) * fraction).rounded())
        let ranked = candidates.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }
        for index in ranked.prefix(k) { flags[index] = true }
        return flags
    }

    /// The q-quantile (linear interpolation between order statistics); 0 for no values.
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let position = q * Double(sorted.count - 1)
        let low = Int(position.rounded(.down))
        let high = min(sorted.count - 1, low + 1)
        return sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
    }
}
