#if canImport(Glibc)
    import Glibc
#endif
import Llama
import Synchronization
import Testing
@testable import SelfAnchor

/// Requests in flight at the same time share one `llama_decode` per step (continuous batching).
/// Real SmolLM2, on engines with several slots of their own.
extension RealModelTests { @Suite struct ConcurrentRequestsTests {
    static func engine(parallel: Int, contextSize: Int = 1024, batching: Engine.Batching = .standard) throws -> Engine {
        var options = Engine.defaultContextOptions
        options.adaptiveThreads = false
        options.contextSize = contextSize
        return try Engine(model: TestEngine.shared.model, options: options, parallel: parallel, batching: batching)
    }

    static let questions = [
        TestEngine.question,
        "Tom has 3 boxes with 4 pens each. How many pens does he have?",
        "A train travels 60 km in one hour. How far does it go in 3 hours?",
    ]
    /// A word each question's solution uses and the others' do not.
    static let keywords = ["cow", "pen", "train"]

    func request(_ question: String, _ strategy: Strategy = .selfAnchor, maxTokens: Int = 48) -> SolveRequest {
        var request = SolveRequest(question: question, strategy: strategy)
        request.maxTokens = maxTokens
        return request
    }

    @Test func concurrentSolvesShareEachDecode() throws {
        let engine = try Self.engine(parallel: 3)
        let sequential = try Self.questions.map { try engine.solve(request($0)) }
        let before = (engine.scheduler.decodeCount, engine.scheduler.submissionCount)
        var results = [SolveResult?](repeating: nil, count: 3)
        let lock = ConditionLock()
        runConcurrently(3) { index in
            let result = try? engine.solve(request(Self.questions[index]))
            lock.withLock { results[index] = result }
        }
        let decodes = engine.scheduler.decodeCount - before.0
        let submissions = engine.scheduler.submissionCount - before.1
        #expect(results.allSatisfy { $0 != nil }, "every request finished")
        for (index, result) in results.enumerated() {
            guard let result else { continue }
            #expect(result.text.hasPrefix("Plan:\n1."))
            #expect(result.timings.predictedN > 0)
            // Each request decoded from its own logits: it talks about its own question only.
            for (other, keyword) in Self.keywords.enumerated() {
                #expect(result.text.contains(keyword) == (other == index), "request \(index): \(result.text)")
            }
            #expect(result.answer != nil)
            // (Batching changes which cells and batches a request shares, so a near tie may go another
            // way: neither the text nor its length is compared with the request decoded alone.)
            #expect(sequential[index].answer != nil)
        }
        #expect(Double(submissions) / Double(decodes) > 1.5,
                "\(submissions) submissions in \(decodes) decodes: the requests mostly decoded together")
        #expect(engine.requestsInFlight == 0)
        // All three emptied their sequences: a lone request finds the prompt cache and nothing else,
        // and repeats its sequential output exactly.
        let again = try engine.solve(request(Self.questions[0]))
        #expect(again.text == sequential[0].text)
    }

    /// Requests need no threads of their own: three solves started as tasks from one async test run on
    /// the engine's scheduler, which steps them together (one decode serving several), on its one thread.
    @Test func requestsAreTasksThatTheSchedulerStepsOnItsThread() async throws {
        let engine = try Self.engine(parallel: 3)
        let before = (engine.scheduler.decodeCount, engine.scheduler.submissionCount)
        final class Threads: Sendable { let seen = Mutex<Set<UInt>>([]) }
        let threads = Threads()
        let results = try await withThrowingTaskGroup(of: (Int, SolveResult).self) { group in
            for index in Self.questions.indices {
                let request = request(Self.questions[index])
                group.addTask {
                    let result = try await engine.solve(request) { _ in
                        // Events come from the request's decoder, wherever it runs.
                        threads.seen.withLock { _ = $0.insert(UInt(pthread_self())) }
                    }
                    return (index, result)
                }
            }
            var results: [Int: SolveResult] = [:]
            for try await (index, result) in group { results[index] = result }
            return results
        }
        let decodes = engine.scheduler.decodeCount - before.0
        let submissions = engine.scheduler.submissionCount - before.1
        #expect(results.count == 3)
        for (index, result) in results {
            for (other, keyword) in Self.keywords.enumerated() {
                #expect(result.text.contains(keyword) == (other == index), "request \(index): \(result.text)")
            }
        }
        #expect(threads.seen.withLock { $0.count } == 1, "every request's decoder ran on the scheduler's thread")
        #expect(Double(submissions) / Double(decodes) > 1.5,
                "\(submissions) submissions in \(decodes) decodes: the requests were stepped together")
        #expect(engine.requestsInFlight == 0)
    }

    @Test func moreRequestsThanSlotsWaitForOne() throws {
        let engine = try Self.engine(parallel: 2)
        let lock = ConditionLock()
        var mostInFlight = 0
        var finished = 0
        runConcurrently(4) { index in
            let result = try? engine.solve(request(Self.questions[index % 3], .cot, maxTokens: 24)) { _ in
                let inFlight = engine.requestsInFlight
                lock.withLock { mostInFlight = max(mostInFlight, inFlight) }
            }
            lock.withLock { finished += result == nil ? 0 : 1 }
        }
        #expect(finished == 4)
        #expect(mostInFlight == 2, "two slots: never more than two in flight, and both used")
    }

    @Test func cancellingOneRequestLeavesTheOthersDecoding() throws {
        let engine = try Self.engine(parallel: 3)
        let flags = (0..<3).map { _ in CancellationFlag() }
        let lock = ConditionLock()
        var outcomes = [String](repeating: "", count: 3)
        runConcurrently(3) { index in
            let outcome: String
            do {
                let result = try engine.solve(request(Self.questions[index], maxTokens: 40), cancellation: flags[index]) { event in
                    if index == 1, case .delta = event { flags[1].cancel() }
                }
                outcome = "done \(result.timings.predictedN)"
            } catch {
                if case DecoderError.cancelled(let partial) = error {
                    outcome = "cancelled \(partial.timings.predictedN)"
                } else {
                    outcome = "failed \(error)"
                }
            }
            lock.withLock { outcomes[index] = outcome }
        }
        #expect(outcomes[1].hasPrefix("cancelled"), "\(outcomes)")
        #expect(outcomes[0].hasPrefix("done") && outcomes[2].hasPrefix("done"), "\(outcomes)")
        #expect(outcomes[0] != "done 0" && outcomes[2] != "done 0")
    }

    @Test func aFullCacheStopsOnlyTheRequestThatDoesNotFit() throws {
        // Two requests with a window of 192 tokens each, asked for far more: the KV cache (512 cells)
        // fills; the one whose tokens no longer fit stops with context_full, the other goes on in the
        // cells it frees, and the engine serves the next request as usual.
        let engine = try Self.engine(parallel: 2, contextSize: 192)
        let lock = ConditionLock()
        var results: [SolveResult] = []
        var failures: [String] = []
        runConcurrently(2) { index in
            var generate = GenerateRequest(messages: [.user("Count from one to one thousand, in words.")], anchors: [])
            generate.maxTokens = 1000
            // Hot sampling: the model rambles on instead of ending early.
            generate.sampling.temperature = 3
            generate.sampling.seed = UInt32(index + 1)
            do {
                let result = try engine.generate(generate)
                lock.withLock { results.append(result) }
            } catch {
                lock.withLock { failures.append("\(error)") }
            }
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(results.count == 2)
        #expect(results.contains { $0.timings.stopReason == .contextFull }, "\(results.map { ($0.timings.predictedN, $0.timings.stopReason) }) \(engine.kvCells)")
        let next = try engine.solve(request(Self.questions[1], .plain, maxTokens: 8))
        #expect(next.timings.predictedN > 0)
    }
} }

/// The batching choice is measured on the machine, not a constant.
extension RealModelTests { @Suite struct BatchCalibrationTests {
    @Test func aNewEngineMeasuresBatchCostsAndLeavesItsContextEmpty() throws {
        let engine = try ConcurrentRequestsTests.engine(parallel: 2, batching: .measured)
        let calibration = engine.batchCalibration
        #expect(!calibration.remembered)
        #expect(calibration.singleMs > 0)
        #expect(Set(calibration.batchMs.keys) == Set(BatchCalibration.measuredSizes))
        #expect(calibration.batchMs.values.allSatisfy { $0 > 0 })
        #expect(calibration.smallRoundLimit == BatchCalibration.smallRoundLimit(singleMs: calibration.singleMs,
                                                                                 batchMs: calibration.batchMs))
        #expect(engine.scheduler.smallRoundLimit == calibration.smallRoundLimit)
        // Nothing of the measurement stays in the KV cache: every sequence is empty.
        let lastPositions = engine.scheduler.perform { context in
            (0..<Int32(context.options.sequences)).map { context.lastPosition(sequence: $0) }
        }
        #expect(lastPositions.allSatisfy { $0 == -1 }, "\(lastPositions)")
        // And the engine decodes as any other: a lone greedy solve repeats itself.
        var request = SolveRequest(question: TestEngine.question)
        request.maxTokens = 24
        #expect(try engine.solve(request).text == (try TestEngine.shared.solve(request).text))
    }

    /// A batch and the same tokens one per call differ in the last bits of their logits, so the choice is
    /// measured once per machine and kept: engines after the first decode alike (greedy output repeats).
    @Test func engineUsesTheChoiceStoredForItsMachineModelAndThreads() throws {
        let directory = "/tmp/selfanchor-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let store = BatchingChoiceStore(path: directory + "/nested/batching.tsv")
        defer {
            unlink(store.path)
            rmdir(directory + "/nested")
            rmdir(directory)
        }
        #expect(store.limit(for: "anything") == nil, "no file yet")

        // The first engine measures and stores its choice.
        let first = try ConcurrentRequestsTests.engine(parallel: 1, batching: .remembered(store))
        #expect(!first.batchCalibration.remembered)
        let key = BatchingChoiceStore.key(model: first.model, threads: first.contextOptions.effectiveThreads)
        #expect(store.limit(for: key) == first.batchCalibration.smallRoundLimit)

        // A stored choice wins over the next engine's own measurement.
        let other = first.batchCalibration.measuredSmallRoundLimit == 0 ? 4 : 0
        #expect(store.store(other, for: key))
        #expect(store.store(3, for: "another machine"), "other keys are kept")
        let second = try ConcurrentRequestsTests.engine(parallel: 1, batching: .remembered(store))
        #expect(second.batchCalibration.remembered)
        #expect(second.batchCalibration.smallRoundLimit == other)
        #expect(second.scheduler.smallRoundLimit == other)
        #expect(store.limit(for: "another machine") == 3)

        // The bench's engine replaces it with its own measurement.
        let measured = try ConcurrentRequestsTests.engine(parallel: 1, batching: .measuredAndStored(store))
        #expect(!measured.batchCalibration.remembered)
        #expect(store.limit(for: key) == measured.batchCalibration.smallRoundLimit)
        #expect(store.limit(for: "another machine") == 3)
    }

    @Test func roundsGoOneTokenPerCallUpToTheLargestSizeWhoseBatchLoses() {
        // The 2-core VM this was built on: a batch of two cost 2.6 singles, of three 3.0, of four 3.5.
        #expect(BatchCalibration.smallRoundLimit(singleMs: 10, batchMs: [2: 26, 3: 30, 4: 35]) == 2)
        #expect(BatchCalibration.smallRoundLimit(singleMs: 10, batchMs: [2: 26, 3: 31, 4: 35]) == 3)
        // Another VM of the same type: two in one batch at 0.67x each, 1.5 singles.
        #expect(BatchCalibration.smallRoundLimit(singleMs: 10, batchMs: [2: 15, 3: 22, 4: 30]) == 0)
        #expect(BatchCalibration.smallRoundLimit(singleMs: 10, batchMs: [2: 15, 3: 22, 4: 41]) == 4)
    }
} }

