import Testing
import Llama
@testable import SelfAnchor

/// One engine on the real SmolLM2 test model, shared by the serialized suites below.
enum TestEngine {
    static let shared: Engine = {
        LlamaBackend.initialise(logLevel: .error)
        do {
            let model = try LlamaModel(path: ModelCatalog.path(for: "test"))
            var options = Engine.defaultContextOptions
            options.contextSize = 2048
            // Tests assert exact greedy output: every decode on all threads, whatever else the machine runs.
            options.adaptiveThreads = false
            return try Engine(model: model, options: options)
        } catch {
            fatalError("test model: \(error) — run `make setup-test`")
        }
    }()

    static let question = "A farmer has 12 cows and buys 7 more. Then 4 cows are sold. How many cows are left?"
}

/// Every suite that uses the shared engine runs inside this one, one test at a time, so that each
/// test's request decodes alone (and greedy output repeats exactly).
@Suite(.serialized) enum RealModelTests {}

extension RealModelTests { @Suite struct SteeringEndpointTests {
    let messages: [ChatMessage] = [
        .system("Answer briefly."), .user("Question: \(TestEngine.question)\nExplain your reasoning."),
    ]

    func generate(_ messages: [ChatMessage], anchors: [String], omega: Double, maxTokens: Int = 40) throws -> SolveResult {
        var request = GenerateRequest(messages: messages, anchors: anchors)
        request.omega = omega
        request.maxTokens = maxTokens
        return try TestEngine.shared.generate(request)
    }

    @Test func omegaOneReproducesPlainDecoding() throws {
        let steered = try generate(messages, anchors: [TestEngine.question], omega: 1)
        let plain = try generate(messages, anchors: [], omega: 1)
        #expect(steered.timings.maskedN > 0, "the masked context really ran")
        #expect(plain.timings.maskedN == 0)
        #expect(steered.timings.predictedN == plain.timings.predictedN)
        #expect(steered.text == plain.text)
        #expect(!plain.text.isEmpty)
    }

    @Test func omegaZeroReproducesTheMaskedContextAlone() throws {
        let steered = try generate(messages, anchors: [TestEngine.question], omega: 0)
        let masked = try MaskedPrompt.mask(messages, anchors: [TestEngine.question], placeholder: MaskedPrompt.defaultPlaceholder)
        let maskedOnly = try generate(masked, anchors: [], omega: 1)
        #expect(steered.text == maskedOnly.text)
        // And the anchor matters: without it the model says something else.
        let plain = try generate(messages, anchors: [], omega: 1)
        #expect(plain.text != maskedOnly.text)
    }

    @Test func strongSteeringChangesTheOutput() throws {
        let steered = try generate(messages, anchors: [TestEngine.question], omega: 3)
        let plain = try generate(messages, anchors: [], omega: 1)
        #expect(steered.text != plain.text)
    }

    @Test func anchorsMissingFromThePromptAreRejected() {
        #expect(throws: DecoderError.self) { try generate(messages, anchors: ["not in the prompt"], omega: 2) }
        #expect(throws: DecoderError.self) { try generate(messages, anchors: [""], omega: 2) }
    }
}
}

extension RealModelTests { @Suite struct MaskedContextTests {
    @Test func questionIsReplacedAndTheTemplateIsIntactAtTokenLevel() throws {
        let model = TestEngine.shared.model
        let messages = Prompts.selfAnchorMessages(question: TestEngine.question, task: .number, placeholder: "[MASK]")
        let real = try model.tokenize(model.applyChatTemplate(messages.real), addSpecial: true, parseSpecial: true)
        let masked = try model.tokenize(model.applyChatTemplate(messages.masked), addSpecial: true, parseSpecial: true)
        // The same control tokens, in the same order: the template is untouched.
        #expect(real.filter(model.isControl) == masked.filter(model.isControl))
        #expect(real.filter(model.isControl).count >= 4)
        // The question's tokens are gone from the masked context, the placeholder's are there.
        let questionTokens = try model.tokenize(TestEngine.question)
        #expect(contains(real, questionTokens.dropFirst().dropLast()))
        #expect(!contains(masked, questionTokens.dropFirst().dropLast()))
        #expect(model.detokenize(masked, special: true).contains("[MASK]"))
        // Everything before the question (template, system prompt) is shared token for token.
        let shared = zip(real, masked).prefix(while: { $0 == $1 }).count
        let systemEnd = try model.tokenize(model.applyChatTemplate([messages.real[0]], addAssistantPrefix: false),
                                           addSpecial: true, parseSpecial: true).count
        #expect(shared >= systemEnd)
    }

    private func contains(_ haystack: [LlamaToken], _ needle: ArraySlice<LlamaToken>) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    @Test func maskingMergesAdjacentAnchorsAndPrefersLongerOnes() throws {
        let messages: [ChatMessage] = [.user("alpha beta gamma")]
        let masked = try MaskedPrompt.mask(messages, anchors: ["alpha", "beta", "alpha beta g"], placeholder: "[M]")
        #expect(masked[0].content == "[M]amma")
        #expect(try MaskedPrompt.mask([.user("a b c")], anchors: ["a", "b"], placeholder: "_")[0].content == "_ c")
    }
}
}

extension RealModelTests { @Suite struct SelfAnchorDecoderTests {
    func solve(_ configure: (inout SolveRequest) -> Void = { _ in }, cancellation: CancellationFlag = CancellationFlag(),
               onEvent: @escaping (DecoderEvent) -> Void = { _ in }) throws -> SolveResult
    {
        var request = SolveRequest(question: TestEngine.question)
        request.maxTokens = 160
        request.maxSteps = 3
        configure(&request)
        return try TestEngine.shared.solve(request, cancellation: cancellation, onEvent: onEvent)
    }

    @Test func streamsPlansAndStepsInOrderWithOmegaAndEnd() throws {
        nonisolated(unsafe) var events: [DecoderEvent] = []
        let result = try solve { _ in } onEvent: { events.append($0) }
        guard case .start = events.first else {
            Issue.record("first event is not start")
            return
        }
        guard case .end(let timings) = events.last else {
            Issue.record("last event is not end")
            return
        }
        #expect(timings == result.timings)
        #expect(timings.maskedN > 0)
        let order = events.compactMap { event -> String? in
            switch event {
            case .plan: return "plan"
            case .reason: return "reason"
            case .answer: return "answer"
            default: return nil
            }
        }
        #expect(order.first == "plan")
        #expect(order.contains("reason"))
        #expect(order.last == "answer")
        if let firstReason = order.firstIndex(of: "reason") { #expect(firstReason > 0) }
        for event in events {
            if case .plan(let record) = event {
                #expect(record.omega >= 1)
                #expect(record.tokens > 0 ? record.confidence != nil : true)
            }
        }
        #expect(result.steps.first?.plan?.index == 1)
        #expect(result.text.hasPrefix("Plan:\n1."), "the default layout: the plan first")
        // Deltas of a plan add up to the plan's text.
        let planDeltas = events.compactMap { event -> String? in
            if case .delta(.plan, 1, let text) = event { return text }
            return nil
        }.joined()
        #expect(planDeltas.trimmingSpaces == result.steps.first?.plan?.text)
    }

    @Test func laterStepsHaveConfidenceScaledOmega() throws {
        let adaptive = SteeringOptions(omega: 2.0, mode: .adaptive)
        let result = try solve { $0.steering = adaptive }
        let records = result.steps.flatMap { [$0.plan, $0.reason].compactMap { $0 } }
        #expect(records.count >= 2)
        #expect(records.first?.omega == 2.0)
        for record in records.dropFirst() {
            let expected = Steering.omega(base: 2.0, confidence: record.steeringConfidence, options: adaptive)
            #expect(abs(record.omega - expected) < 1e-12)
        }
    }

    @Test func greedyOutputIsDeterministic() throws {
        let first = try solve()
        let second = try solve()
        #expect(first.text == second.text)
        #expect(first.steps == second.steps)
    }

    /// The decoder is a step function: driven one `step()` at a time it writes at most one token per
    /// step, goes from the plan through the steps to the answer, and writes what `solve` writes.
    @Test func theLineLoopIsAStepFunctionThatWritesWhatSolveWrites() async throws {
        let engine = TestEngine.shared
        var request = SolveRequest(question: TestEngine.question)
        request.maxTokens = 160
        request.maxSteps = 3
        let solved = try await engine.solve(request)
        var phases: [SelfAnchorLoop.Phase] = []
        var steps = 0
        var mostTokensInOneStep = 0
        // Stepped by hand, as the engine's scheduler steps a request: on the scheduler's thread.
        let stepped = try await withTaskExecutorPreference(engine.scheduler) {
            let slot = await engine.slots.acquire()
            defer { engine.slots.release(slot) }
            let run = DecodingRun(engine: engine, slot: slot, sampling: request.sampling, cancellation: CancellationFlag(),
                                  emit: { _ in }, strategy: request.strategy.rawValue, question: request.question)
            run.calculator = request.usesCalculator
            return try await run.execute {
                let loop = try await run.selfAnchorLoop(request)
                var before = run.result.timings.predictedN
                var more = true
                while more {
                    if phases.last != loop.segment.phase { phases.append(loop.segment.phase) }
                    more = try await loop.step()
                    steps += 1
                    mostTokensInOneStep = max(mostTokensInOneStep, run.result.timings.predictedN - before)
                    before = run.result.timings.predictedN
                }
                run.recordAnswer(task: request.task)
            }
        }
        #expect(stepped.text == solved.text)
        #expect(stepped.steps == solved.steps)
        #expect(stepped.answer?.extracted == solved.answer?.extracted)
        #expect(mostTokensInOneStep == 1)
        #expect(steps >= stepped.timings.predictedN)
        #expect(phases.first == .plan(1))
        #expect(phases.contains(.step(1)))
        #expect(phases.last == .answer)
    }

    @Test func maxTokensIsHonoured() throws {
        for limit in [1, 12, 40] {
            let result = try solve { $0.maxTokens = limit; $0.maxSteps = 20 }
            #expect(result.timings.predictedN <= limit)
            #expect(result.answer != nil)
        }
        // Chain of thought on this question runs longer than 12 tokens: it stops at exactly 12.
        let plain = try solve { $0.strategy = .cot; $0.maxTokens = 12 }
        #expect(plain.timings.stopReason == .maxTokens)
        #expect(plain.timings.predictedN == 12)
    }

    @Test func cancellationStopsWithinOneToken() throws {
        let flag = CancellationFlag()
        nonisolated(unsafe) var deltasAfterCancel = 0
        nonisolated(unsafe) var cancelledAt = -1
        nonisolated(unsafe) var seen = 0
        do {
            _ = try solve({ $0.maxTokens = 400 }, cancellation: flag) { event in
                guard case .delta = event else { return }
                seen += 1
                if flag.isCancelled { deltasAfterCancel += 1 }
                if seen == 5 {
                    flag.cancel()
                    cancelledAt = seen
                }
            }
            Issue.record("a cancelled solve returned normally")
        } catch let error as DecoderError {
            guard case .cancelled(let partial) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(cancelledAt == 5)
            #expect(deltasAfterCancel == 0)
            #expect(partial.timings.stopReason == .cancelled)
            #expect(!partial.text.isEmpty)
        } catch {
            Issue.record("unexpected error \(error)")
        }
        // The engine serves the next request normally.
        #expect(try solve { $0.maxTokens = 10 }.timings.predictedN <= 10)
    }

    @Test func everyBaselineStrategyRuns() throws {
        for strategy in [Strategy.plain, .cot, .psPlus, .re2, .spa] {
            nonisolated(unsafe) var sawText = false
            let result = try solve({ $0.strategy = strategy; $0.maxTokens = 24 }) { event in
                if case .delta(.text, _, _) = event { sawText = true }
            }
            #expect(result.strategy == strategy.rawValue)
            #expect(sawText)
            #expect(result.answer != nil)
            #expect((result.timings.maskedN > 0) == (strategy == .spa))
        }
    }

    @Test func promptCacheReusesTheSharedPrefixAndKeepsOutputExact() throws {
        TestEngine.shared.dropPromptCache()
        let first = try solve { $0.maxTokens = 40 }
        let second = try solve { $0.maxTokens = 40 }
        #expect(first.timings.promptDecodedN == first.timings.promptN, "a cold cache decodes the whole prompt")
        #expect(second.timings.promptDecodedN < first.timings.promptN / 3, "a warm cache decodes little more than the question")
        #expect(second.text == first.text)
        // Another kind of request replaces the cached prefix; coming back gives the same output again.
        let other = try solve { $0.strategy = .cot; $0.maxTokens = 10 }
        #expect(other.timings.promptDecodedN == other.timings.promptN)
        let third = try solve { $0.maxTokens = 40 }
        #expect(third.text == first.text)
        #expect(third.timings.promptDecodedN == third.timings.promptN)
        // A different question with the same strategy reuses the prefix.
        let fourth = try solve { $0.question = "Tom has 3 boxes with 4 pens each. How many pens?"; $0.maxTokens = 10 }
        #expect(fourth.timings.promptDecodedN < fourth.timings.promptN / 3)
    }

    @Test func adaptiveMaskedPassSkipsConfidentTokens() throws {
        // Every line and value steered (by default plans and computed values are not), so that every token
        // is a candidate for skipping;
        // interleaved, where a step's masked context extends the question-masked one (upfront, masking
        // plan item k re-decodes what follows it for every step, with or without skipping).
        func solve(_ configure: (inout SolveRequest) -> Void) throws -> SolveResult {
            try self.solve {
                $0.steering.planOmega = 1.3
                $0.steering.resultOmega = 2
                $0.planning = .interleaved
                configure(&$0)
            }
        }
        let always = try solve { $0.maxTokens = 60; $0.steering.skipMaskedAbove = nil }
        let adaptive = try solve { $0.maxTokens = 60 }  // τ = 0.9, the default
        #expect(always.timings.maskedSkippedN == 0)
        #expect(adaptive.timings.maskedSkippedN > 0, "some tokens are confident enough to skip")
        // Skipping every token is unsteered decoding, token for token.
        let skipAll = try solve { $0.maxTokens = 40; $0.steering.skipMaskedAbove = 0 }
        let unsteered = try solve { $0.maxTokens = 40; $0.steering = SteeringOptions(omega: 1) }
        #expect(skipAll.text == unsteered.text)
        #expect(skipAll.timings.maskedSkippedN >= skipAll.timings.predictedN)
        // A skipped token is never decoded in the masked context (unless a later token needs it): with every
        // token skipped, the masked context holds what a one-token solve leaves there, nothing generated.
        // (Compared within one mode: solves that steer write other texts, so their totals do not compare.)
        let promptOnly = try solve { $0.maxTokens = 1; $0.steering.skipMaskedAbove = 0 }
        #expect(skipAll.timings.maskedN == promptOnly.timings.maskedN)
        // The reference decodes every generated token but the last in the masked context too.
        let promptEvery = try solve { $0.maxTokens = 1; $0.steering.skipMaskedAbove = nil }
        #expect(always.timings.maskedN - promptEvery.timings.maskedN >= always.timings.predictedN - 1)
        // A threshold no token reaches steers every token (the masked context catches up each time).
        let never = try solve { $0.maxTokens = 60; $0.steering.skipMaskedAbove = 1.01 }
        #expect(never.timings.maskedSkippedN == 0)
        #expect(never.timings.maskedN >= never.timings.predictedN)
        #expect(never.text.hasPrefix("Plan 1:"))
    }

    @Test func theLayoutDefaultsByTaskAndAnExplicitOneWins() throws {
        // Yes/no questions are laid out interleaved unless the request says otherwise; numbers upfront.
        let yesNo = try solve { $0.question = "Is the sun larger than the moon?"; $0.task = .yesno; $0.maxTokens = 40 }
        #expect(yesNo.planning == .interleaved)
        #expect(yesNo.text.hasPrefix("Plan 1:"))
        let number = try solve { $0.maxTokens = 40 }
        #expect(number.planning == .upfront)
        #expect(number.text.hasPrefix("Plan:\n1."))
        let yesNoUpfront = try solve {
            $0.question = "Is the sun larger than the moon?"; $0.task = .yesno; $0.planning = .upfront; $0.maxTokens = 40
        }
        #expect(yesNoUpfront.planning == .upfront)
        #expect(yesNoUpfront.text.hasPrefix("Plan:\n1."))
    }

    /// Yes/no solves steer their plans (and answer) toward the question and leave the steps unsteered unless
    /// the request says otherwise; other tasks the reverse.
    @Test func lineOmegasDefaultByTaskAndAnExplicitOneWins() throws {
        func omegas(_ change: (inout SolveRequest) -> Void) throws -> (plans: [Double], steps: [Double]) {
            nonisolated(unsafe) var plans: [Double] = []
            nonisolated(unsafe) var steps: [Double] = []
            _ = try solve({ $0.maxTokens = 80; $0.maxSteps = 3; change(&$0) }) { event in
                switch event {
                case .plan(let record): plans.append(record.omega)
                case .reason(let record): steps.append(record.omega)
                default: break
                }
            }
            return (plans, steps)
        }
        let yesNo = try omegas { $0.question = "Is the sun larger than the moon?"; $0.task = .yesno }
        #expect(!yesNo.plans.isEmpty && yesNo.plans.allSatisfy { $0 == 2 }, "\(yesNo)")
        #expect(!yesNo.steps.isEmpty && yesNo.steps.allSatisfy { $0 == 1 }, "\(yesNo)")
        let number = try omegas { _ in }
        #expect(!number.plans.isEmpty && number.plans.allSatisfy { $0 == 1 }, "\(number)")
        #expect(!number.steps.isEmpty && number.steps.allSatisfy { $0 == 2 }, "\(number)")
        let yesNoSteered = try omegas {
            $0.question = "Is the sun larger than the moon?"; $0.task = .yesno; $0.steering.stepOmega = 2; $0.steering.planOmega = 1
        }
        #expect(yesNoSteered.plans.allSatisfy { $0 == 1 } && yesNoSteered.steps.allSatisfy { $0 == 2 }, "\(yesNoSteered)")
    }

    @Test func upfrontPlanningWritesThePlanFirstThenOneStepPerItem() throws {
        nonisolated(unsafe) var events: [DecoderEvent] = []
        let result = try solve({ $0.planning = .upfront; $0.maxTokens = 200; $0.maxSteps = 4 }) { events.append($0) }
        #expect(result.text.hasPrefix("Plan:\n1."))
        #expect(result.planning == .upfront)
        let order = events.compactMap { event -> String? in
            switch event {
            case .plan(let record): return "plan\(record.index)"
            case .reason(let record): return "reason\(record.index)"
            default: return nil
            }
        }
        let plans = order.filter { $0.hasPrefix("plan") }
        let reasons = order.filter { $0.hasPrefix("reason") }
        #expect(!plans.isEmpty && !reasons.isEmpty)
        // Every plan item comes before the first step, numbered 1, 2, …; so do the steps.
        #expect(order.firstIndex { $0.hasPrefix("reason") }! > order.lastIndex { $0.hasPrefix("plan") }!)
        #expect(plans == (1...plans.count).map { "plan\($0)" })
        #expect(reasons == (1...reasons.count).map { "reason\($0)" })
        // The text has a numbered line per plan item and a "Step k:" line per step.
        for k in 1...plans.count { #expect(result.text.contains("\n\(k).") || k == 1) }
        for k in 1...reasons.count { #expect(result.text.contains("Step \(k):")) }
        // Steps pair with their plan items in the result.
        for step in result.steps where step.reason != nil && step.plan != nil {
            #expect(step.plan?.index == step.reason?.index)
        }
    }

    /// A question on which the test model, after its first step, goes on to a new line of that step
    /// and starts it with "Answer:" (found on gsm8k-dev item 3, interleaved): that line is the answer.
    @Test func anAnswerStartedInsideAStepEndsTheSolve() throws {
        nonisolated(unsafe) var events: [DecoderEvent] = []
        let question = "James decides to run 3 sprints 3 times a week.  He runs 60 meters each sprint.  "
            + "How many total meters does he run a week?"  // (the item's double spaces)
        let result = try solve({
            $0.question = question
            $0.planning = .interleaved
            $0.maxTokens = 300
            $0.maxSteps = 6
        }) { events.append($0) }
        let lines = result.text.split(separator: "\n").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        let answerLines = lines.filter { StepParser.header(of: $0)?.header == .answer }
        #expect(answerLines.count == 1, "one answer line: \(result.text)")
        #expect(lines.last.map { StepParser.header(of: $0)?.header == .answer } == true, "the answer is the last line: \(result.text)")
        for step in result.steps {
            let text = step.reason?.text ?? ""
            #expect(!text.split(separator: "\n").contains { StepParser.header(of: $0)?.header == .answer }, "step: \(text)")
        }
        // What was streamed for each step is the step's text: no line break that was not written.
        for step in result.steps {
            guard let reason = step.reason else { continue }
            let deltas = events.compactMap { event -> String? in
                if case .delta(.reason, reason.index, let text) = event { return text }
                return nil
            }.joined()
            #expect(deltas.trimmingSpaces == reason.text)
        }
        #expect(result.answer?.extracted != nil)
    }

    @Test func upfrontStepsAreSteeredTowardTheirPlanItem() throws {
        // With ω = 1 on plans and a strong ω on steps, the steps differ from unsteered ones, and the
        // masked context decoded more than the prompt (plan k replaced by the placeholder).
        let steered = try solve { $0.planning = .upfront; $0.maxTokens = 120; $0.steering.planOmega = 1; $0.steering.stepOmega = 4
            $0.steering.mode = .fixed; $0.steering.skipMaskedAbove = nil }
        let unsteered = try solve { $0.planning = .upfront; $0.maxTokens = 120; $0.steering = SteeringOptions(omega: 1) }
        let steeredPlans = steered.steps.compactMap(\.plan?.text)
        let unsteeredPlans = unsteered.steps.compactMap(\.plan?.text)
        #expect(steeredPlans == unsteeredPlans, "plans are unsteered in both")
        #expect(steered.steps.compactMap(\.reason).allSatisfy { $0.omega == 4 })
        #expect(steered.text != unsteered.text, "the steps changed")
        #expect(steered.timings.maskedN > unsteered.timings.maskedN)
    }

    @Test func omegaOneDecodesNoMaskedContextAfterThePrompt() throws {
        nonisolated(unsafe) var maskedPrompt = 0
        let result = try solve({ $0.steering = SteeringOptions(omega: 1); $0.maxTokens = 60 }) { event in
            if case .start(let info) = event { maskedPrompt = info.maskedPromptTokens }
        }
        #expect(result.timings.predictedN > 20)
        #expect(result.timings.maskedN <= maskedPrompt, "only (part of) the masked prompt was decoded")
    }

    @Test func theCalculatorWritesExactValuesAndReportsThem() throws {
        for strategy in [Strategy.cot, .selfAnchor] {
            nonisolated(unsafe) var calculations: [Calculator.Calculation] = []
            nonisolated(unsafe) var deltas = ""
            let result = try solve({ $0.strategy = strategy; $0.calculator = true; $0.maxTokens = 80 }) { event in
                if case .calculation(let calculation) = event { calculations.append(calculation) }
                if case .delta(_, _, let text) = event { deltas += text }
            }
            #expect(!calculations.isEmpty, "\(strategy): the model wrote an expression and '='")
            #expect(result.timings.calculationsN == calculations.count)
            for calculation in calculations {
                // The value is the expression's exact value, and it is in the text right after the '='.
                #expect(Calculator.result(endingWith: calculation.expression + " =")?.value == calculation.value)
                #expect(result.text.contains("= \(calculation.value)"))
                #expect(deltas.contains("= \(calculation.value)"), "streamed like the model's own text")
            }
            let without = try solve { $0.strategy = strategy; $0.calculator = false; $0.maxTokens = 80 }
            #expect(without.timings.calculationsN == 0)
        }
    }

    @Test func promptTooLongIsAClearError() {
        let long = String(repeating: "cows and sheep and goats ", count: 800)
        #expect(throws: DecoderError.self) { try solve { $0.question = long } }
    }
}
}

