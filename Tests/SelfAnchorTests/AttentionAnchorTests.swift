import AttentionAnalysis
import Testing
import Llama
@testable import SelfAnchor

/// Span choice on hand-made metrics: which tokens may be anchors and how spans widen to words.
@Suite struct AttentionAnchorSpanTests {
    static func metrics(fai: [Double]) -> AttentionMetrics {
        AttentionMetrics(options: AttentionAnalysisOptions(), headDistances: [], localHeads: [], globalHeads: [],
                         waad: Array(repeating: 1, count: fai.count), fai: fai,
                         faiDefined: fai.map { _ in true })
    }

    // indices:           0       1     2    3       4       5      6    7    8    9        10   11
    static let pieces = ["Plan", " 1", ":", " Zor", "blax", " has", " ", "1", "2", " cows", ".", "\n"]

    @Test func widensToTheWholeWordAndSkipsHeadersAndPunctuation() {
        // Highest FAI: the header (excluded), the period and the line break (no letter or digit), then
        // "blax" (widened to " Zorblax") and "2" (widened to " 12", the lone space token included).
        let fai: [Double] = [9, 9, 9, 0.1, 0.8, 0.2, 0.1, 0.1, 0.7, 0.3, 0.95, 0.9]
        let spans = AttentionAnchors.spans(metrics: Self.metrics(fai: fai), pieces: Self.pieces, excluded: [0..<3], count: 2)
        #expect(spans == [3..<5, 6..<9])
    }

    @Test func countAndUndefinedFAIAreRespected() {
        var fai = [Double](repeating: 0.1, count: Self.pieces.count)
        fai[9] = 0.9
        let metrics = AttentionMetrics(options: AttentionAnalysisOptions(), headDistances: [], localHeads: [], globalHeads: [],
                                       waad: fai.map { _ in 1 }, fai: fai,
                                       faiDefined: fai.indices.map { $0 != 9 })
        let spans = AttentionAnchors.spans(metrics: metrics, pieces: Self.pieces, excluded: [], count: 1)
        #expect(spans.count == 1)
        #expect(!spans[0].contains(9), "a token without an FAI value is never chosen")
        #expect(AttentionAnchors.spans(metrics: metrics, pieces: Self.pieces, excluded: [], count: 0).isEmpty)
    }

    @Test func maskingReplacesEachSpanOnce() {
        let tokens: [LlamaToken] = [10, 11, 12, 13, 14, 15]
        let masked = AttentionAnchors.masking(tokens[...], spans: [4..<6, 1..<3], placeholder: [99, 98])
        #expect(masked == [10, 99, 98, 13, 99, 98])
    }
}

extension RealModelTests { @Suite struct AttentionAnchorDecoderTests {
    @Test func stepsAreSteeredTowardSpansOfTheirOwnEarlierText() throws {
        var request = SolveRequest(question: TestEngine.question, strategy: .attentionAnchor)
        request.maxTokens = 80
        request.maxSteps = 3
        nonisolated(unsafe) var records: [StepRecord] = []
        nonisolated(unsafe) var textBefore: [String] = []
        nonisolated(unsafe) var text = ""
        let result = try TestEngine.shared.solve(request) { event in
            switch event {
            case .delta(_, _, let delta): text += delta
            case .plan(let record), .reason(let record):
                records.append(record)
                textBefore.append(text)
            default: break
            }
        }
        #expect(result.strategy == "attention-anchor")
        #expect(result.timings.maskedN > 0)
        let anchored = records.filter { !$0.anchors.isEmpty }
        #expect(!anchored.isEmpty, "once the generation is long enough, lines get attention anchors")
        for (record, before) in zip(records, textBefore) {
            #expect(record.anchors.count <= request.anchorSpans)
            for anchor in record.anchors {
                #expect(result.text.contains(anchor), "anchor \"\(anchor)\" comes from the generation")
                #expect(!["Plan", "Step", "Answer"].contains(where: { anchor.hasPrefix($0 + " ") || anchor == $0 }),
                        "the decoder's own headers are never anchors: \"\(anchor)\"")
                _ = before
            }
        }
        // Greedy decoding with attention anchors is as repeatable as any other strategy.
        let again = try TestEngine.shared.solve(request)
        #expect(again.text == result.text)
    }

    @Test func noSpansIsSelfAnchorsFormatSteeredTowardTheQuestionOnly() throws {
        var request = SolveRequest(question: TestEngine.question, strategy: .attentionAnchor)
        request.maxTokens = 40
        request.anchorSpans = 0
        let result = try TestEngine.shared.solve(request)
        #expect(result.steps.allSatisfy { ($0.plan?.anchors ?? []).isEmpty && ($0.reason?.anchors ?? []).isEmpty })
        #expect(result.text.hasPrefix("Plan:\n1."))
    }
}
}

extension RealModelTests { @Suite struct AnalyzeTests {
    /// The prompt `analyze` rebuilds for a solve result is the prompt the decoder used, token for token.
    @Test func analysingASolveRebuildsItsPrompt() throws {
        for strategy in [Strategy.selfAnchor, .cot] {
            var request = SolveRequest(question: TestEngine.question, strategy: strategy)
            request.maxTokens = 30
            let result = try TestEngine.shared.solve(request)
            let report = try TestEngine.shared.analyze(AnalyzeRequest(
                source: .solve(strategy: strategy, question: result.question, task: .number, text: result.text,
                               planning: result.planning ?? .upfront)))
            #expect(report.promptTokens == result.timings.promptN)
            #expect(report.tokens.map(\.text).joined() == result.text)
        }
    }

    @Test func cancellingAnAnalysisStopsIt() {
        let flag = CancellationFlag()
        flag.cancel()
        #expect(throws: DecoderError.self) {
            try TestEngine.shared.analyze(AnalyzeRequest(source: .text(prompt: "", response: TestEngine.question)),
                                          cancellation: flag)
        }
    }
}
}
