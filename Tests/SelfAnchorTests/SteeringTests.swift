import Testing
@testable import SelfAnchor

@Suite struct SteeringMathTests {
    let options = { var options = SteeringOptions(); options.mode = .adaptive; return options }()

    @Test func gainIsOneAtTheReferenceDecreasingAndBounded() {
        #expect(abs(Steering.gain(confidence: options.referenceConfidence, options: options) - 1) < 1e-12)
        var previous = Double.infinity
        for step in 0...100 {
            let g = Steering.gain(confidence: Double(step) / 100, options: options)
            #expect(g <= previous)
            #expect(g >= 0 && g <= options.maximumGain)
            previous = g
        }
        #expect(Steering.gain(confidence: 1, options: options) == 0)
        #expect(Steering.gain(confidence: 0.01, options: options) == options.maximumGain)
    }

    @Test func omegaFollowsTheFormula() {
        let options = SteeringOptions(omega: 1.5, mode: .adaptive)
        #expect(Steering.omega(base: 1.5, confidence: nil, options: options) == 1.5)
        #expect(Steering.omega(base: 1.5, confidence: 1, options: options) == 1)
        let low = Steering.omega(base: 1.5, confidence: 0.3, options: options)
        let high = Steering.omega(base: 1.5, confidence: 0.95, options: options)
        #expect(low > 1.5 && high < 1.5 && high >= 1)
        var fixed = options
        fixed.mode = .fixed
        #expect(Steering.omega(base: 1.5, confidence: 0.3, options: fixed) == 1.5)
    }

    @Test func lineOmegasResolveTheTaskDefaultsAndTheAnswerFollowsThePlans() {
        var options = SteeringOptions()
        #expect(options.lineOmegas(for: .number) == (1, 2, 1))
        #expect(options.lineOmegas(for: .yesno) == (2, 1, 2))
        options.planOmega = 1.6
        #expect(options.lineOmegas(for: .yesno) == (1.6, 1, 1.6))
        options.answerOmega = 3
        options.stepOmega = 1.3
        #expect(options.lineOmegas(for: .number) == (1.6, 1.3, 3))
    }

    @Test func theValueAfterAnEqualsSignIsAResultUntilItsNumberEnds() {
        for text in ["4 × 12 =", "4 × 12 = ", "so 4 × 12 = 4", "= $1,200.5", "half = 50 %", "x = 3 = 3."] {
            #expect(Steering.isWritingResult(after: text), "\(text)")
        }
        for text in ["", "4 × 12", "4 × 12 = 48 apples", "a = 3\n", "= 48\nHe has 48", "12 = 4 × 3", "y = x"] {
            #expect(!Steering.isWritingResult(after: text), "\(text)")
        }
    }

    @Test func harmonicMean() {
        #expect(Steering.harmonicMean([]) == nil)
        #expect(abs(Steering.harmonicMean([0.5, 0.5])! - 0.5) < 1e-12)
        #expect(abs(Steering.harmonicMean([1, 0.25])! - 0.4) < 1e-12)
        #expect(Steering.harmonicMean([0, 1])! < 1e-10)
    }

    @Test func combineIsExactAtTheEndpointsAndLinearBetween() {
        let real: [Float] = [1.5, -2.25, 0.1, 7, -30.125]
        let masked: [Float] = [0.3, 4.5, -0.7, 7, 12.0625]
        var output = [Float](repeating: 0, count: real.count)
        func run(_ omega: Double, modulation: Bool = false) -> [Float] {
            real.withUnsafeBufferPointer { r in
                masked.withUnsafeBufferPointer { m in
                    output.withUnsafeMutableBufferPointer { Steering.combine(real: r, masked: m, omega: omega, modulation: modulation, into: $0) }
                }
            }
            return output
        }
        #expect(run(1) == real)
        #expect(run(0) == masked)
        #expect(run(1, modulation: true) == real)
        let amplified = run(2)
        for v in real.indices { #expect(abs(amplified[v] - (2 * real[v] - masked[v])) < 1e-4) }
        // Modulation scales the steering of unlikely tokens down.
        let modulated = run(2, modulation: true)
        #expect(abs(modulated[3] - amplified[3]) < 1e-4)  // the most likely token: full steering
        #expect(abs(modulated[4] - real[4]) < 1e-4)  // a very unlikely token: almost none
    }

    @Test func plausibilityKeepsSteeringAmongTheTokensTheRealContextFindsPlausible() {
        // Token 2 is all but ruled out by the real context (p/max p = e^-6) but the anchor raises it
        // most, so at ω = 2 it would win; token 1 is plausible (p/max p = e^-1 ≈ 0.37).
        let real: [Float] = [5, 4, -1]
        let masked: [Float] = [5, 3.5, -12]
        var output = [Float](repeating: 0, count: real.count)
        func run(_ omega: Double, plausibility: Double, modulation: Bool = false) -> [Float] {
            real.withUnsafeBufferPointer { r in
                masked.withUnsafeBufferPointer { m in
                    output.withUnsafeMutableBufferPointer {
                        Steering.combine(real: r, masked: m, omega: omega, modulation: modulation, plausibility: plausibility,
                                         into: $0)
                    }
                }
            }
            return output
        }
        func argmax(_ values: [Float]) -> Int { values.indices.max { values[$0] < values[$1] }! }
        #expect(argmax(run(2, plausibility: 0)) == 2)
        let constrained = run(2, plausibility: 0.1)
        #expect(constrained[2] == -Float.infinity)
        #expect(constrained[0] == 5 && constrained[1] == 4.5)  // the rest steered as before
        #expect(argmax(constrained) == 0)
        #expect(run(5, plausibility: 0.1)[1] > 5)  // a plausible token still wins with enough steering
        #expect(argmax(run(5, plausibility: 0.1)) == 1)
        #expect(run(2, plausibility: 0.1, modulation: true)[2] == -Float.infinity)
        // α = 1: only the top token survives, whatever ω.
        #expect(run(50, plausibility: 1).filter { $0 > -Float.infinity }.count == 1)
        // ω ≤ 1 is untouched: plain decoding and the masked model alone stay exact.
        #expect(run(1, plausibility: 0.5) == real)
        #expect(run(0, plausibility: 0.5) == masked)
    }

    @Test func probabilityIsASoftmax() {
        let logits: [Float] = [0, 0, 0.693147181]
        logits.withUnsafeBufferPointer { buffer in
            #expect(abs(Steering.probability(of: 2, logits: buffer) - 0.5) < 1e-6)
            #expect(abs(Steering.probability(of: 0, logits: buffer) - 0.25) < 1e-6)
        }
    }
}

@Suite struct StepParserTests {
    @Test(arguments: [
        ("Plan 1: Find the total.", StepParser.Header.plan(1), "Find the total."),
        ("**Step 2:** 3 × 4 = 12", .step(2), "3 × 4 = 12"),
        ("### Plan 3: Subtract", .plan(3), "Subtract"),
        ("Answer: 18", .answer, "18"),
        ("Final answer: 7", .answer, "7"),
        ("step 4. add them", .step(4), "add them"),
        ("Step 5) carry", .step(5), "carry"),
        ("Plan: no number", .plan(nil), "no number"),
        ("  - Answer: yes", .answer, "yes"),
    ])
    func headers(line: String, header: StepParser.Header, rest: String) {
        let parsed = StepParser.header(of: line)
        #expect(parsed?.header == header)
        #expect(parsed?.rest == rest)
    }

    @Test(arguments: ["Planning ahead is good.", "The answer is 5", "Steps are hard", "Answer. 5", "", "12 + 3 = 15"])
    func nonHeaders(line: String) {
        #expect(StepParser.header(of: line) == nil)
    }

    @Test func parseSplitsSections() {
        let text = "Intro words\nPlan 1: Count.\nStep 1: 3 + 4 = 7\nso seven.\nPlan 2: Double.\nStep 2: 14\nAnswer: 14"
        let sections = StepParser.parse(text)
        #expect(sections.map(\.header) == [nil, .plan(1), .step(1), .plan(2), .step(2), .answer])
        #expect(sections[2].text == "3 + 4 = 7\nso seven.")
        #expect(sections.last?.text == "14")
    }

    @Test(arguments: [
        ("Plan", StepParser.LineStart.plan), (" Step", .plan), ("Pl", .plan), ("Answer", .answer), ("**Answer", .answer),
        ("Final", .answer), ("Ans", .answer), ("\n", .plan), ("The", .continuation), (" 12", .item), ("3", .item),
        ("-", .item), (" *", .item), ("A", .continuation), ("So", .continuation), (" ", .continuation),
    ])
    func lineStarts(prefix: String, kind: StepParser.LineStart) {
        #expect(StepParser.lineStart(prefix) == kind)
    }
}
