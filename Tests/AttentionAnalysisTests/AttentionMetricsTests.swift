import Testing
@testable import AttentionAnalysis

/// The metrics on tiny attention matrices whose WAAD, FAI, Δ and head split are worked out by hand.
@Suite struct AttentionMetricsTests {
    /// Feeds full rows (`matrix[head][t]` over absolute positions 0...t) for the response rows.
    static func accumulate(_ matrix: [[[Float]]], responseStart: Int, options: AttentionAnalysisOptions)
        -> AttentionAccumulator
    {
        var accumulator = AttentionAccumulator(options: options, responseStart: responseStart, headCount: matrix.count)
        for (head, rows) in matrix.enumerated() {
            for (position, row) in rows.enumerated() where position >= responseStart {
                row.withUnsafeBufferPointer { accumulator.add(head: head, position: position, probabilities: $0) }
            }
        }
        return accumulator
    }

    static func options(window: Int = 2, fai: (Int, Int) = (1, 2)) -> AttentionAnalysisOptions {
        var options = AttentionAnalysisOptions()
        options.waadWindow = window
        options.faiWindowStart = fai.0
        options.faiWindowEnd = fai.1
        options.localFraction = 0.5
        options.globalFraction = 0.5
        return options
    }

    // Head 0 always looks at the previous token (local); head 1 always at position 0 (global).
    // Five tokens, all of them response (responseStart 0).
    static let previous: [[Float]] = [
        [1], [1, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1, 0],
    ]
    static let first: [[Float]] = [
        [1], [1, 0], [1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0, 0],
    ]

    @Test func headDistancesSplitLocalFromGlobal() {
        let accumulator = Self.accumulate([Self.previous, Self.first], responseStart: 0, options: Self.options())
        // d_0 = mean(0,1,1,1,1) = 0.8; d_1 = mean(0,1,2,3,4) = 2.
        #expect(accumulator.headDistances == [0.8, 2.0])
        let metrics = accumulator.metrics()
        #expect(metrics.localHeads == [0])
        #expect(metrics.globalHeads == [1])
    }

    @Test func waadIsTheClippedDistanceUnderLocalHeads() {
        // Make head 0 the global one by giving it the longer look-back: the local head is then `previous`.
        let metrics = Self.accumulate([Self.first, Self.previous], responseStart: 0, options: Self.options(window: 2))
            .metrics()
        #expect(metrics.localHeads == [1])
        #expect(metrics.waad == [0, 1, 1, 1, 1])
        // Δ_t = |WAAD_t − WAAD_{t+1}|.
        #expect(metrics.delta == [1, 0, 0, 0, 0])
        // Under `first` (local when it is the only head in the split) the distance clips at W = 2.
        var options = Self.options(window: 2)
        options.localFraction = 1
        options.globalFraction = 1
        let firstOnly = Self.accumulate([Self.first], responseStart: 0, options: options).metrics()
        #expect(firstOnly.waad == [0, 1, 2, 2, 2])
    }

    @Test func faiAveragesTheGlobalColumnOverItsWindow() {
        let metrics = Self.accumulate([Self.previous, Self.first], responseStart: 0, options: Self.options(fai: (1, 2)))
            .metrics()
        // Global head = `first`: column 0 gets weight 1 from rows 1 and 2 (its window [1, 2]); others 0.
        #expect(metrics.fai[0] == 1)
        #expect(metrics.fai[1] == 0 && metrics.fai[2] == 0 && metrics.fai[3] == 0)
        // Token 4 has an empty window (4 + 1 > N − 1).
        #expect(metrics.faiDefined == [true, true, true, true, false])
        #expect(metrics.fai[4] == 0)
        // Top 40% of the 4 defined tokens, rounded: 2 anchors, token 0 first, then the earliest tie.
        #expect(metrics.isAnchor == [true, true, false, false, false])
    }

    @Test func faiWindowIsClippedAtTheEndOfTheResponse() {
        // Mixed head: row t gives half its weight to position 0 and half to t−1 (t ≥ 2).
        let mixed: [[Float]] = [[1], [1, 0], [0.5, 0.5, 0], [0.5, 0, 0.5, 0], [0.5, 0, 0, 0.5, 0]]
        var options = Self.options(fai: (1, 10))
        options.localFraction = 1
        options.globalFraction = 1
        let metrics = Self.accumulate([mixed], responseStart: 0, options: options).metrics()
        // Column 0: rows 1..4 (window clipped to N−1 = 4): (1 + .5 + .5 + .5) / 4.
        #expect(metrics.fai[0] == 2.5 / 4)
        // Column 2: rows 3..4: (.5 + 0) / 2.
        #expect(metrics.fai[2] == 0.25)
    }

    @Test func promptColumnsCountForDistanceButAreNotScored() {
        // Two prompt tokens, three response tokens; one head attending to position 0 throughout.
        let rows: [[Float]] = [[1], [1, 0], [1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0, 0]]
        var options = Self.options(window: 3, fai: (1, 5))
        options.localFraction = 1
        options.globalFraction = 1
        let accumulator = Self.accumulate([rows], responseStart: 2, options: options)
        // Response rows are positions 2, 3, 4: distances 2, 3, 4.
        #expect(accumulator.headDistances == [3])
        let metrics = accumulator.metrics()
        #expect(metrics.count == 3)
        #expect(metrics.waad == [2, 3, 3])
        // No response column receives weight.
        #expect(metrics.fai == [0, 0, 0])
    }

    @Test func creditWeightsFollowTheFlags() {
        let metrics = AttentionMetrics(
            options: AttentionAnalysisOptions(), headDistances: [], localHeads: [], globalHeads: [],
            // WAAD jumps down at t = 3 (Δ_2 = 5): token 4, an anchor with low WAAD, is locally dominated.
            waad: [6, 6, 6, 1, 1, 6, 6, 6, 6, 6],
            fai: [0, 0, 0, 0, 9, 0, 0, 0, 0, 0], faiDefined: Array(repeating: true, count: 10))
        #expect(metrics.delta[2] == 5 && metrics.delta[4] == 5)
        // 40% of 10 defined tokens = 4 anchors: token 4 then the earliest zeros 0, 1, 2.
        #expect(metrics.isAnchor == [true, true, true, false, true, false, false, false, false, false])
        // 40% of the 9 Δ candidates (3.6 → 4): tokens 2 and 4 (Δ 5), then the earliest zeros 0, 1.
        #expect(metrics.isPreplan == [true, true, true, false, true, false, false, false, false, false])
        #expect(metrics.gammaLocalChunk[2] == 1.5 && metrics.gammaLocalChunk[3] == 1)
        #expect(metrics.gammaGlobalAnchor[4] == 1.5 && metrics.gammaGlobalAnchor[5] == 1)
        // τ_waad = median(WAAD) = 6, τ_Δ = 60th percentile of Δ_0..8 = 0 → every anchor with a
        // preceding token is dominated; token 4's introducer is token 2 (largest Δ among 1..3 before it).
        #expect(metrics.dominatedAnchors.contains { $0.anchor == 4 && $0.introducer == 2 })
        // Token 4 keeps (1 − α) = half its boost; token 2 gets α from 4 and (1 − α) as an anchor itself: capped at 1.
        #expect(metrics.gammaCoupled[4] == 1.25)
        #expect(metrics.gammaCoupled[2] == 1.5)
        #expect(metrics.gammaCoupled[9] == 1)
    }

    @Test func middleThirdLayers() {
        #expect(AttentionAnalysisOptions.middleThird(modelLayers: 30, count: 5) == [10, 13, 15, 18, 20])
        #expect(AttentionAnalysisOptions.middleThird(modelLayers: 24, count: 5) == [8, 10, 12, 14, 16])
        #expect(AttentionAnalysisOptions.middleThird(modelLayers: 24, count: 1) == [8])
        var options = AttentionAnalysisOptions()
        options.layers = [40]
        #expect(options.problem(modelLayers: 30) != nil)
        options.layers = nil
        options.alpha = 2
        #expect(options.problem(modelLayers: 30)?.setting == .alpha)
    }
}
