import Testing
import Llama
@testable import SelfAnchor

/// Speculative sampling's rule, without a model: accepting a draft drawn from p with probability
/// min(1, q/p) and otherwise drawing from the residual gives exactly q.
@Suite struct SpeculativeSamplingMathTests {
    @Test func acceptOrResidualDrawsFromTheSteeredDistribution() {
        let p: [Int32: Double] = [0: 0.5, 1: 0.3, 2: 0.2]
        let q: [Int32: Double] = [0: 0.2, 1: 0.3, 2: 0.4, 3: 0.1]  // token 3 only the steered choice can reach
        var random = SplitMix64(seed: 7)
        var counts: [Int32: Int] = [:]
        let draws = 200_000
        for _ in 0..<draws {
            // The draft, drawn from p.
            var u = random.nextUniform()
            var draft: Int32 = 2
            for token in [Int32(0), 1, 2] {
                u -= p[token]!
                if u < 0 { draft = token; break }
            }
            let token = Steering.acceptsDraft(realProbability: p[draft]!, steeredProbability: q[draft] ?? 0,
                                              uniform: random.nextUniform())
                ? draft : Steering.residualSample(real: p, steered: q, uniform: random.nextUniform())
            counts[token, default: 0] += 1
        }
        for (token, probability) in q {
            let frequency = Double(counts[token] ?? 0) / Double(draws)
            #expect(abs(frequency - probability) < 0.005, "token \(token): \(frequency) vs \(probability)")
        }
        // A draft the steered distribution favours at least as much is always kept.
        #expect(Steering.acceptsDraft(realProbability: 0.2, steeredProbability: 0.4, uniform: 0.999))
        #expect(!Steering.acceptsDraft(realProbability: 0.5, steeredProbability: 0, uniform: 0))
        // p = q leaves no residual: the draw falls back to q.
        #expect(Steering.residualSample(real: q, steered: q, uniform: 0) == 0)
    }
}

extension RealModelTests { @Suite struct SpeculativeMaskedPassTests {
    /// Solves with every round decoded one token per `llama_decode`, so that both modes compute each
    /// token's logits from one-token decodes (a batch of several tokens rounds differently, which moves
    /// near ties on this small model).
    func solve(_ question: String, _ configure: (inout SolveRequest) -> Void) throws -> SolveResult {
        let scheduler = TestEngine.shared.scheduler
        let limit = scheduler.smallRoundLimit
        scheduler.smallRoundLimit = Int.max
        defer { scheduler.smallRoundLimit = limit }
        var request = SolveRequest(question: question)
        request.maxTokens = 160
        request.maxSteps = 4
        request.steering.planOmega = 1.3  // plans steered too: every line has a masked context
        configure(&request)
        return try TestEngine.shared.solve(request)
    }

    static let questions = [
        TestEngine.question,
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
            + "How many clips did Natalia sell altogether in April and May?",
    ]

    /// Greedy speculative output is the every-token output, computed from other decodes: the masked
    /// positions come in one batch instead of one per token, and the KV cells they land in differ
    /// (this engine's earlier requests decide which cells are free), so attention sums in another order
    /// and, on this small model, a near tie can go the other way a few lines in (the adaptive pass with
    /// no token skipped differs from the every-token pass the same way). What must hold is that the
    /// texts agree line for line until such a tie: a misaligned draft or verification would change the
    /// first line.
    @Test func greedySpeculativeWritesWhatTheMaskedPassOnEveryTokenWrites() throws {
        var agreed = 0
        var total = 0
        for question in Self.questions {
            let every = try solve(question) { $0.planning = .interleaved; $0.steering.maskedPass = .every }
            let speculative = try solve(question) { $0.planning = .interleaved; $0.steering.maskedPass = .speculative }
            let (a, b) = (Array(every.text.utf8), Array(speculative.text.utf8))
            var common = 0
            while common < min(a.count, b.count) && a[common] == b[common] { common += 1 }
            let lines = every.text.utf8.prefix(common).filter { $0 == UInt8(ascii: "\n") }.count
            #expect(lines >= 2 || speculative.text == every.text,
                    "the first plan and step agree:\n\(every.text)\n---\n\(speculative.text)")
            agreed += common
            total += min(a.count, b.count)
            #expect(every.timings.draftsN == 0)
            let timings = speculative.timings
            #expect(timings.draftsN > 0 && timings.draftedN >= timings.draftsN)
            #expect(timings.draftAcceptedN > 0 && timings.draftAcceptedN <= timings.draftedN)
            #expect(timings.draftAcceptedN <= timings.predictedN)
        }
        #expect(Double(agreed) >= 0.5 * Double(total), "most of the text agrees: \(agreed) of \(total) bytes")
    }

    @Test func upfrontDraftsAreVerifiedAgainstThePlanItemMaskedContext() throws {
        let every = try solve(Self.questions[0]) { $0.planning = .upfront; $0.steering.maskedPass = .every }
        let speculative = try solve(Self.questions[0]) { $0.planning = .upfront; $0.steering.maskedPass = .speculative }
        #expect(speculative.steps.first?.plan?.text == every.steps.first?.plan?.text)
        #expect(speculative.text.hasPrefix("Plan:\n1.") && speculative.text.contains("Step 1:"))
        let timings = speculative.timings
        #expect(timings.draftsN > 0 && timings.draftAcceptedN > 0 && timings.draftAcceptedN <= timings.draftedN)
        // Steps re-decode the plan-item-masked context: more masked tokens than generated ones.
        #expect(timings.maskedN > timings.predictedN)
    }

    /// `resultOmega` changes the ω of the value after an `=` and nothing else: two solves that differ only
    /// in it write the same text up to a point inside such a value. With it, speculative drafts stop at
    /// `=` and stay exact.
    @Test func resultOmegaSteersOnlyTheValueAfterAnEqualsSign() throws {
        let question = ConcurrentRequestsTests.questions[1]
        let configure: (Double) -> (inout SolveRequest) -> Void = { omega in
            // Without the calculator: with it the decoder writes the values, and ω has nothing to change.
            { $0.planning = .interleaved; $0.steering.maskedPass = .every; $0.steering.resultOmega = omega; $0.calculator = false }
        }
        let unsteered = try solve(question, configure(1))
        let reversed = try solve(question, configure(-3))
        #expect(unsteered.text.contains("="), "the test needs a computed value:\n\(unsteered.text)")
        let (a, b) = (Array(unsteered.text.unicodeScalars), Array(reversed.text.unicodeScalars))
        var common = 0
        while common < min(a.count, b.count) && a[common] == b[common] { common += 1 }
        #expect(common < min(a.count, b.count), "ω −3 on the values changes some value:\n\(unsteered.text)")
        let prefix = String(String.UnicodeScalarView(a[..<common]))
        #expect(Steering.isWritingResult(after: prefix),
                "the texts part inside a value after '=':\n\(unsteered.text)\n---\n\(reversed.text)")

        let speculative = try solve(question) {
            $0.planning = .interleaved; $0.steering.maskedPass = .speculative; $0.steering.resultOmega = 1
            $0.calculator = false
        }
        #expect(speculative.steps.first?.reason?.text == unsteered.steps.first?.reason?.text,
                "the first step, with its value, agrees:\n\(unsteered.text)\n---\n\(speculative.text)")
        #expect(speculative.timings.draftsN > 0)
    }

    @Test func aDraftNeverRunsPastTheTokenBudget() throws {
        let result = try solve(Self.questions[1]) { $0.maxTokens = 37; $0.steering.maskedPass = .speculative }
        #expect(result.timings.predictedN <= 37)
        #expect(result.answer != nil, "the answer is still asked for within the budget")
    }

    @Test func speculativeSamplingRepeatsForASeedAndFollowsTheLayout() throws {
        func sampled(seed: UInt32) throws -> SolveResult {
            try solve(Self.questions[0]) {
                $0.steering.maskedPass = .speculative
                $0.sampling = SamplingOptions(temperature: 0.8, topP: 0.95, topK: 40, seed: seed)
            }
        }
        let first = try sampled(seed: 11)
        let again = try sampled(seed: 11)
        #expect(first.text == again.text)
        #expect(first.text.hasPrefix("Plan"))
        #expect(first.timings.draftsN > 0)
        // A token rejected under sampling is replaced by a residual draw, so not every draft is kept whole.
        #expect(first.timings.draftAcceptedN <= first.timings.draftedN)
    }
}
}
