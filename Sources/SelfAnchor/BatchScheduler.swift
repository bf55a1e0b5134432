import Llama

/// Continuous batching: every decode of every request in flight goes through here, so that requests
/// decoding at the same time share one `llama_decode` per step instead of taking turns.
///
/// A run `join`s when it starts and `leave`s when it ends. To decode, it submits its tokens and
/// sleeps; when every run in flight has submitted, the last one to arrive decodes all submissions as
/// one batch (chunked to the batch size), hands each run its logits and wakes them. The runs then
/// pick their next tokens in parallel and submit again. A lone run decodes at once, as before.
///
/// KV-cache edits (`withContext`) wait for a running decode and are never interleaved with one. A
/// decode is aborted only when every run in it is cancelled. When the batch does not fit the KV cache
/// (`llama_decode` returns 1, which leaves the cache unchanged), the runs are retried one at a time,
/// so only a run that itself does not fit is told so.
final class BatchScheduler: @unchecked Sendable {
    /// One token to decode: its sequence, position, and whether its next-token logits are wanted.
    struct Item {
        var sequence: Int32
        var position: Int
        var token: LlamaToken
        var wantsLogits: Bool
    }

    /// What a run submitted, and (once `done`) what came of it.
    final class Submission {
        let items: [Item]
        let cancellation: CancellationFlag
        /// Takes the next-token logits of a sequence whose item asked for them; called on the decoding
        /// thread while the submitting run sleeps.
        let receiveLogits: (Int32, UnsafeBufferPointer<Float>) -> Void
        /// How many of `items` (from the first) are in the KV cache.
        var decoded = 0
        var error: LlamaError?
        var done = false

        init(items: [Item], cancellation: CancellationFlag,
             receiveLogits: @escaping (Int32, UnsafeBufferPointer<Float>) -> Void)
        {
            self.items = items
            self.cancellation = cancellation
            self.receiveLogits = receiveLogits
        }
    }

    let context: LlamaContext
    private let batch: LlamaBatch
    private let lock = ConditionLock()
    private var participants = 0
    private var pending: [Submission] = []
    /// A decode or a KV edit is running.
    private var busy = false
    /// Decodes run so far, and how many submissions they carried (for tests and the bench).
    private var decodes = 0
    private var submissions = 0
    var decodeCount: Int { lock.withLock { decodes } }
    var submissionCount: Int { lock.withLock { submissions } }

    init(context: LlamaContext) {
        self.context = context
        batch = LlamaBatch(capacity: context.options.batchSize)
    }

    /// Runs in flight.
    var runCount: Int { lock.withLock { participants } }

    /// A run starts; returns how many runs (itself included) are now in flight.
    @discardableResult
    func join() -> Int {
        lock.withLock {
            participants += 1
            return participants
        }
    }

    /// A run ends: the others no longer wait for it.
    func leave() {
        lock.withLock {
            participants -= 1
            lock.broadcast()
        }
    }

    /// Runs `body` on the context when no decode is running (KV-cache edits).
    func withContext<T>(_ body: (LlamaContext) throws -> T) rethrows -> T {
        lock.lock()
        while busy { lock.wait() }
        busy = true
        lock.unlock()
        defer {
            lock.withLock {
                busy = false
                lock.broadcast()
            }
        }
        return try body(context)
    }

    /// Decodes the items together with whatever the other runs in flight submit; returns when they are
    /// in the KV cache. The submission's `error` says why not (then `decoded` says how far it got).
    func decode(_ items: [Item], cancellation: CancellationFlag,
                receiveLogits: @escaping (Int32, UnsafeBufferPointer<Float>) -> Void) -> Submission
    {
        let mine = Submission(items: items, cancellation: cancellation, receiveLogits: receiveLogits)
        lock.lock()
        pending.append(mine)
        lock.broadcast()
        while !mine.done {
            if !busy && !pending.isEmpty && pending.count >= participants {
                let submissions = pending
                pending.removeAll()
                busy = true
                decodes += 1
                self.submissions += submissions.count
                lock.unlock()
                run(submissions)
                lock.lock()
                busy = false
                for submission in submissions { submission.done = true }
                lock.broadcast()
            } else {
                lock.wait()
            }
        }
        lock.unlock()
        return mine
    }

    // MARK: Decoding (one thread at a time: the caller holds `busy`)

    private func run(_ submissions: [Submission]) {
        context.shouldAbort = { submissions.allSatisfy { $0.cancellation.isCancelled } }
        defer { context.shouldAbort = nil }
        var queue: [(submission: Submission, index: Int)] = []
        for submission in submissions {
            for index in submission.items.indices { queue.append((submission, index)) }
        }
        var start = 0
        while start < queue.count {
            let chunk = queue[start..<min(queue.count, start + batch.capacity)]
            do {
                try decodeChunk(chunk)
            } catch {
                let unfinished = submissions.filter { $0.decoded < $0.items.count }
                if error == .decodeFailed(code: 1) && unfinished.count > 1 {
                    // The batch does not fit: the rest goes one run at a time, so that only a run that
                    // does not fit on its own fails.
                    for submission in unfinished { runAlone(submission) }
                } else {
                    for submission in unfinished { submission.error = error }
                }
                return
            }
            start += chunk.count
        }
    }

    private func runAlone(_ submission: Submission) {
        let remaining: [(submission: Submission, index: Int)] =
            submission.items.indices.dropFirst(submission.decoded).map { (submission: submission, index: $0) }
        var start = 0
        while start < remaining.count {
            let chunk = remaining[start..<min(remaining.count, start + batch.capacity)]
            do {
                try decodeChunk(chunk)
            } catch {
                submission.error = error
                return
            }
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
