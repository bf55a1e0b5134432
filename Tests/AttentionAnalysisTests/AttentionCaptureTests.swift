import Testing
@testable import AttentionAnalysis
@testable import Llama

/// The real SmolLM2 test model, loaded once.
enum TestModel {
    static let shared: LlamaModel = {
        LlamaBackend.initialise(logLevel: .error)
        do { return try LlamaModel(path: ModelCatalog.path(for: "test")) } catch {
            fatalError("test model: \(error) — run `make setup-test`")
        }
    }()
}

/// Attention read from the real model through the eval callback.
@Suite(.serialized) struct AttentionCaptureTests {
    let model = TestModel.shared

    /// Every row the tap delivers, per (layer, head, position), for a short text decoded in several micro-batches.
    @Test func capturedRowsAreCausalDistributions() throws {
        let tokens = try model.tokenize("The quick brown fox jumps over the lazy dog. The dog sleeps while the fox runs.",
                                        addSpecial: true)
        let layers = [0, model.layerCount / 2, model.layerCount - 1]
        final class Seen { var rows = 0; var worstSum = 0.0; var futureMass = 0.0; var batchStart = 0; var layers = Set<Int>()
            var keyCounts = Set<Int>() }
        let seen = Seen()
        let tap = AttentionTap(layers: layers, queryHeads: model.headCount) { p in
            seen.layers.insert(p.layer)
            seen.keyCounts.insert(p.keyCount)
            #expect(p.headCount == TestModel.shared.headCount)
            for head in 0..<p.headCount {
                for query in 0..<p.queryCount {
                    let row = p.row(head: head, query: query)
                    let position = seen.batchStart + query
                    var sum = 0.0
                    for value in row { sum += Double(value) }
                    seen.worstSum = max(seen.worstSum, abs(sum - 1))
                    for cell in (position + 1)..<row.count { seen.futureMass += Double(row[cell]) }
                    seen.rows += 1
                }
            }
        }
        var options = ContextOptions()
        options.contextSize = 256
        options.batchSize = 8  // several micro-batches: rows of later batches see earlier cells
        options.sequences = 1
        options.unifiedKV = false
        let context = try LlamaContext(model: model, options: options, attention: tap)
        let batch = LlamaBatch(capacity: 8)
        var position = 0
        while position < tokens.count {
            let end = min(tokens.count, position + 8)
            batch.clear()
            batch.add(tokens[position..<end], startingAt: Int32(position), sequence: 0, logitsForLast: true)
            seen.batchStart = position
            try context.decode(batch)
            position = end
        }
        #expect(seen.layers == Set(layers))
        #expect(seen.rows == tokens.count * layers.count * model.headCount)
        #expect(seen.worstSum < 1e-3, "a row's probabilities sum to 1 (worst deviation \(seen.worstSum))")
        #expect(seen.futureMass == 0, "no weight on cells after the query's own position")
        #expect(seen.keyCounts.allSatisfy { $0 >= 8 })
        // Grouped-query attention: fewer KV heads than query heads, and still one row per query head.
        #expect(model.kvHeadCount < model.headCount)
    }

    @Test func aLayoutOtherThanOneRowPerQueryHeadIsRefused() throws {
        let tap = AttentionTap(layers: [0], queryHeads: model.headCount + 1) { _ in }
        var options = ContextOptions()
        options.contextSize = 256
        options.sequences = 1
        let context = try LlamaContext(model: model, options: options, attention: tap)
        let batch = LlamaBatch(capacity: 8)
        batch.add(try model.tokenize("Hello there", addSpecial: true), startingAt: 0, sequence: 0, logitsForLast: true)
        #expect(throws: LlamaError.self) { try context.decode(batch) }
        #expect(tap.failure?.contains("query heads") == true)
    }

    @Test func analysisOfARealText() throws {
        let prompt = try model.tokenize("<|im_start|>user\nSummarise.<|im_end|>\n<|im_start|>assistant\n",
                                        addSpecial: true, parseSpecial: true)
        let response = try model.tokenize(
            "Alice has 12 apples. Bob gives Alice 5 more apples, so Alice now has 17 apples. "
                + "Then Alice eats 3 apples, leaving 14 apples. Alice shares half with Carol, so each has 7 apples.")
        let report = try AttentionAnalyzer.analyze(model: model, prompt: prompt, response: response)
        #expect(report.tokens.count == response.count)
        #expect(report.layers == AttentionAnalysisOptions.middleThird(modelLayers: model.layerCount, count: 5))
        let metrics = report.metrics
        // WAAD lies in [0, W].
        #expect(metrics.waad.allSatisfy { $0 >= 0 && $0 <= Double(metrics.options.waadWindow) + 1e-9 })
        #expect(metrics.fai.allSatisfy { $0 >= 0 && $0 <= 1 + 1e-9 })
        // The split takes 30% of the heads each way, and local heads look less far back than global ones.
        let heads = report.layers.count * model.headCount
        #expect(metrics.localHeads.count == Int((Double(heads) * 0.3).rounded()))
        let maxLocal = metrics.localHeads.map { metrics.headDistances[$0] }.max()!
        let minGlobal = metrics.globalHeads.map { metrics.headDistances[$0] }.min()!
        #expect(maxLocal <= minGlobal)
        // The last H_lo tokens have no FAI; tokens' texts put the response back together.
        #expect(report.tokens.suffix(10).allSatisfy { $0.fai == nil })
        #expect(report.tokens.map(\.text).joined() == model.detokenize(response))
        // γ is 1 or γ_amp under the two simple strategies, and within [1, γ_amp] when coupled.
        #expect(report.tokens.allSatisfy { $0.gammaLocalChunk == ($0.isPreplan ? 1.5 : 1) })
        #expect(report.tokens.allSatisfy { $0.gammaCoupled >= 1 && $0.gammaCoupled <= 1.5 })
        #expect(report.peakResidentBytes ?? 0 > 0)
    }

    /// A name the text keeps coming back to draws more future attention than the same name in the same
    /// place when the rest of the text talks about something else.
    @Test func aPhraseReferredBackToGetsHighFAI() throws {
        let opening = "On a cold morning the old sailor met a traveller called Zorblax near the harbour."
        let referring = " Zorblax carried a map. The sailor asked Zorblax where the map led, and Zorblax smiled."
            + " Later Zorblax showed the map to the sailor, and the sailor trusted Zorblax."
        let unrelated = " The wind carried a smell. The sailor asked the baker where the bread came from, and he smiled."
            + " Later the baker showed the oven to the sailor, and the sailor trusted the baker."
        let prompt = try model.tokenize("", addSpecial: true)
        var options = AttentionAnalysisOptions()
        options.faiWindowStart = 3
        options.faiWindowEnd = 100
        let nameTokens = try model.tokenize(" Zorblax")
        func nameFAI(_ continuation: String) throws -> (Double, Bool) {
            let response = try model.tokenize(opening + continuation)
            let report = try AttentionAnalyzer.analyze(model: model, prompt: prompt, response: response, options: options)
            // The name's first occurrence, in the opening (identical in both texts).
            let start = (0...(response.count - nameTokens.count)).first {
                Array(response[$0..<($0 + nameTokens.count)]) == nameTokens
            }!
            let span = report.tokens[start..<(start + nameTokens.count)]
            return (span.compactMap(\.fai).reduce(0, +) / Double(span.count), span.contains { $0.isAnchor })
        }
        let (referred, isAnchor) = try nameFAI(referring)
        let (control, _) = try nameFAI(unrelated)
        #expect(referred > 1.5 * control, "FAI of the name: referred back to \(referred), not referred to \(control)")
        #expect(isAnchor)
    }

    @Test func badOptionsAreRejected() {
        var options = AttentionAnalysisOptions()
        options.layers = [model.layerCount]
        #expect(throws: AttentionError.self) {
            try AttentionAnalyzer.analyze(model: model, prompt: [1], response: [2, 3], options: options)
        }
        #expect(throws: AttentionError.emptyResponse) {
            try AttentionAnalyzer.analyze(model: model, prompt: [1], response: [])
        }
    }
}
