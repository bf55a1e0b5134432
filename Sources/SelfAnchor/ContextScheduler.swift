#if canImport(Glibc)
    import Glibc
#endif
import Llama
import Synchronization

/// The one owner of an engine's `LlamaContext`: every request's decoder runs on its thread, and it
/// decodes what the requests submit in rounds (continuous batching).
///
/// A request is an async function (`Engine.solve`) that prefers this scheduler as its `TaskExecutor`,
/// so it runs on the scheduler's thread until it awaits a decode: `decode` queues its tokens and
/// suspends it. When no request can go on (every one in flight is suspended in `decode`, or waits for
/// a slot), the scheduler decodes all submissions as one batch (chunked to the batch size), hands each
/// request its logits and resumes them; they pick their next tokens and submit again. Each decoder is
/// thus a resumable state machine stepped once per round: no request has a thread of its own, no
/// request "leads" a round, and the context — decodes and KV-cache edits alike — is touched only from
/// this thread, between rounds. Code on other threads (status, the bench) reaches it through
/// `perform`. (The `llama_decode` calls themselves run on the process's `ComputeThread`.)
///
/// A decode is aborted only when every submission in it is cancelled. When the batch does not fit the
/// KV cache (`llama_decode` returns 1, which leaves the cache unchanged), the submissions are retried
/// one at a time, so only a request that itself does not fit is told so.
/// Unchecked: the work queue and counters change only under `lock`; the context, the batch and the
/// submissions are touched only on the scheduler's thread.
final class ContextScheduler: TaskExecutor, @unchecked Sendable {
    /// One token to decode: its sequence, position, and whether its next-token logits are wanted.
    struct Item {
        var sequence: Int32
        var position: Int
        var token: LlamaToken
        var wantsLogits: Bool
    }

    /// What a request submitted, and (once its round is decoded) what came of it.
    final class Submission {
        let items: [Item]
        let cancellation: CancellationFlag
        /// Takes the next-token logits of a sequence whose item asked for them; called on the scheduler's
        /// thread while the submitting request is suspended.
        let receiveLogits: (Int32, UnsafeBufferPointer<Float>) -> Void
        /// How many of `items` (from the first) are in the KV cache.
        var decoded = 0
        var error: LlamaError?
        fileprivate var continuation: CheckedContinuation<Void, Never>?

        init(items: [Item], cancellation: CancellationFlag,
             receiveLogits: @escaping (Int32, UnsafeBufferPointer<Float>) -> Void)
        {
            self.items = items
            self.cancellation = cancellation
            self.receiveLogits = receiveLogits
        }
    }

    /// What the scheduler's thread runs next.
    private enum Work {
        /// A request's next stretch until it awaits.
        case job(UnownedJob)
        /// A call from another thread (`perform`).
        case call(() -> Void)
    }

    private let lock = ConditionLock()
    private var work: [Work] = []
    private var pending: [Submission] = []
    private var stopping = false
    private var decodes = 0
    private var submissions = 0
    private var participants = 0
    private var thread: pthread_t?

    private let context: LlamaContext
    private let batch: LlamaBatch
    private let smallRoundLimitValue = Atomic<Int>(3)

    /// Rounds of at most this many tokens are decoded a token per `llama_decode` call; 0 always batches.
    /// Set from the engine's `BatchCalibration` (whether a small batch beats its tokens one by one
    /// depends on the machine).
    var smallRoundLimit: Int {
        get { smallRoundLimitValue.load(ordering: .relaxed) }
        set { smallRoundLimitValue.store(newValue, ordering: .relaxed) }
    }

    init(context: LlamaContext) {
        self.context = context
        batch = LlamaBatch(capacity: context.options.batchSize)
        thread = startThread { [self] in serve() }
    }

    /// Ends the scheduler's thread once its queued work is done (the engine's `deinit`). Called on the
    /// thread itself (a request's task released the last reference to the engine), it lets the thread
    /// end on its own.
    func stop() {
        lock.withLock {
            stopping = true
            lock.broadcast()
        }
        guard let thread else { return }
        if isCurrent { pthread_detach(thread) } else { pthread_join(thread, nil) }
    }

    /// Tokens per `llama_decode` call at most.
    var batchSize: Int { batch.capacity }

    /// Decodes run so far, and how many submissions they carried (for tests and the bench).
    var decodeCount: Int { lock.withLock { decodes } }
    var submissionCount: Int { lock.withLock { submissions } }

    /// Requests in flight (`join`ed and not yet `leave`).
    var runCount: Int { lock.withLock { participants } }

    func join() { lock.withLock { participants += 1 } }
    func leave() { lock.withLock { participants -= 1 } }

    /// Whether the caller runs on the scheduler's thread.
    var isCurrent: Bool {
        guard let thread else { return false }
        return pthread_equal(pthread_self(), thread) != 0
    }

    // MARK: TaskExecutor

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.withLock {
            work.append(.job(job))
            lock.broadcast()
        }
    }

    // MARK: The context

    /// KV-cache edits from a request's decoder (on the scheduler's thread, so never during a decode).
    func withContext<T>(_ body: (LlamaContext) throws -> T) rethrows -> T {
        precondition(isCurrent, "the context is touched only on the scheduler's thread")
        return try body(context)
    }

    /// Runs `body` on the scheduler's thread between rounds and returns its result (for callers on other
    /// threads: status, the bench; on the scheduler's thread it runs at once).
    func perform<T>(_ body: @escaping (LlamaContext) -> T) -> T {
        if isCurrent { return body(context) }
        let answer = HandOff<T>()
        lock.withLock {
            work.append(.call { [context] in answer.put(body(context)) })
            lock.broadcast()
        }
        return answer.wait()
    }

    /// Decodes the items together with whatever the other requests in flight submit; returns when they
    /// are in the KV cache. The submission's `error` says why not (then `decoded` says how far it got).
    func decode(_ items: [Item], cancellation: CancellationFlag,
                receiveLogits: @escaping (Int32, UnsafeBufferPointer<Float>) -> Void) async -> Submission
    {
        let submission = Submission(items: items, cancellation: cancellation, receiveLogits: receiveLogits)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            submission.continuation = continuation
            lock.withLock {
                pending.append(submission)
                lock.broadcast()
            }
        }
        return submission
    }

    // MARK: The scheduler's thread

    /// Runs requests until none can go on, then decodes their submissions as one round; repeats.
    private func serve() {
        let executor = asUnownedTaskExecutor()
        lock.lock()
        while true {
            if !work.isEmpty {
                let next = work.removeFirst()
                lock.unlock()
                switch next {
                case .job(let job): job.runSynchronously(on: executor)
                case .call(let call): call()
                }
                lock.lock()
            } else if !pending.isEmpty {
                let round = pending
                pending.removeAll()
                decodes += 1
                submissions += round.count
                lock.unlock()
                decodeRound(round)
                // Resuming queues each request's next stretch as work (it takes the lock).
                for submission in round {
                    let continuation = submission.continuation
                    submission.continuation = nil
                    continuation?.resume()
                }
                lock.lock()
            } else if stopping {
                break
            } else {
                lock.wait()
            }
        }
        lock.unlock()
    }

    private func decodeRound(_ round: [Submission]) {
        context.shouldAbort = { round.allSatisfy { $0.cancellation.isCancelled } }
        defer { context.shouldAbort = nil }
        var queue: [(submission: Submission, index: Int)] = []
        for submission in round {
            for index in submission.items.indices { queue.append((submission, index)) }
        }
        do {
            try decode(queue, chunkSize: queue.count <= smallRoundLimit ? 1 : batch.capacity)
        } catch {
            let unfinished = round.filter { $0.decoded < $0.items.count }
            if error == .decodeFailed(code: 1) && unfinished.count > 1 {
                // The batch does not fit: the rest goes one submission at a time, so that only a request
                // that does not fit on its own fails.
                for submission in unfinished {
                    do {
                        try decode(submission.items.indices.dropFirst(submission.decoded).map { (submission, $0) },
                                   chunkSize: batch.capacity)
                    } catch {
                        submission.error = error
                    }
                }
            } else {
                for submission in unfinished { submission.error = error }
            }
        }
    }

    /// Decodes the items in order, `chunkSize` per `llama_decode` call.
    private func decode(_ items: [(submission: Submission, index: Int)], chunkSize: Int) throws(LlamaError) {
        var start = 0
        while start < items.count {
            let chunk = items[start..<min(items.count, start + chunkSize)]
            try decodeChunk(chunk)
            start += chunk.count
        }
    }

    private func decodeChunk(_ chunk: ArraySlice<(submission: Submission, index: Int)>) throws(LlamaError) {
        batch.clear()
        var outputs: [(submission: Submission, sequence: Int32, index: Int32)] = []
        for (submission, index) in chunk {
            let item = submission.items[index]
            let batchIndex = batch.add(item.token, position: Int32(item.position), sequences: [item.sequence],
                                       logits: item.wantsLogits)
            if item.wantsLogits { outputs.append((submission, item.sequence, batchIndex)) }
        }
        try context.decode(batch)
        for (submission, _) in chunk { submission.decoded += 1 }
        for output in outputs {
            output.submission.receiveLogits(output.sequence, context.logits(at: output.index))
        }
    }
}
