import Llama

/// Continuous batching: every decode of every request in flight goes through here, so that requests
/// decoding at the same time share one `llama_decode` per step instead of taking turns.
///
/// A run `join`s when it starts and `leave`s when it ends. To decode, it submits its tokens and
/// sleeps; when every run in flight has submitted, the last to arrive decodes all submissions as one
/// batch (chunked to the batch size), hands each run its logits and wakes them. The runs then pick
/// their next tokens in parallel and submit again. A lone run decodes at once. (The `llama_decode`
/// calls themselves run on the process's `ComputeThread`, whichever run leads.)
///
/// KV-cache edits (`withContext`) wait for a running decode and are never interleaved with one.
/// A decode is aborted only when every run in it is cancelled. When the batch does not fit the KV
/// cache (`llama_decode` returns 1, which leaves the cache unchanged), the runs are retried one at a
/// time, so only a run that itself does not fit is told so.
/// Unchecked: every mutable field is guarded by its `ConditionLock`, which Swift cannot see as a lock.
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

    /// What the runs share, under `lock`.
    private final class State {
        let lock = ConditionLock()
        var participants = 0
        var pending: [Submission] = []
        /// A decode or a KV edit is running.
        var busy = false
        var decodes = 0
        var submissions = 0

        var readyToDecode: Bool { !busy && !pending.isEmpty && pending.count >= participants }
    }

    let context: LlamaContext
    private let state = State()

    /// Rounds of at most this many tokens are decoded a token per `llama_decode` call; 0 always batches.
    /// Set from the engine's `BatchCalibration` (whether a small batch beats its tokens one by one
    /// depends on the machine).
    var smallRoundLimit: Int {
        get { decoder.smallRoundLimit }
        set { decoder.smallRoundLimit = newValue }
    }
    private let decoder: Decoder

    init(context: LlamaContext) {
        self.context = context
        decoder = Decoder(context: context)
    }

    /// Decodes run so far, and how many submissions they carried (for tests and the bench).
    var decodeCount: Int { state.lock.withLock { state.decodes } }
    var submissionCount: Int { state.lock.withLock { state.submissions } }

    /// Runs in flight.
    var runCount: Int { state.lock.withLock { state.participants } }

    /// A run starts.
    func join() {
        state.lock.withLock { state.participants += 1 }
    }

    /// A run ends: the others no longer wait for it.
    func leave() {
        state.lock.withLock {
            state.participants -= 1
            state.lock.broadcast()
        }
    }

    /// Runs `body` on the context when no decode is running (KV-cache edits).
    func withContext<T>(_ body: (LlamaContext) throws -> T) rethrows -> T {
        state.lock.lock()
        while state.busy { state.lock.wait() }
        state.busy = true
        state.lock.unlock()
        defer {
            state.lock.withLock {
                state.busy = false
                state.lock.broadcast()
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
        state.lock.lock()
        state.pending.append(mine)
        while !mine.done {
            if state.readyToDecode {
                // Everyone is waiting: this run decodes the round for all of them.
                let submissions = state.pending
                state.pending.removeAll()
                state.busy = true
                state.decodes += 1
                state.submissions += submissions.count
                state.lock.unlock()
                decoder.run(submissions)
                state.lock.lock()
                state.busy = false
                for submission in submissions { submission.done = true }
                state.lock.broadcast()
            } else {
                state.lock.wait()
            }
        }
        state.lock.unlock()
        return mine
    }

    /// Turns submissions into `llama_decode` calls (one round at a time: the leader holds `busy`).
    private final class Decoder {
        let context: LlamaContext
        let batch: LlamaBatch
        var smallRoundLimit = 3

        init(context: LlamaContext) {
            self.context = context
            batch = LlamaBatch(capacity: context.options.batchSize)
        }

        func run(_ submissions: [Submission]) {
            context.shouldAbort = { submissions.allSatisfy { $0.cancellation.isCancelled } }
            defer { context.shouldAbort = nil }
            var queue: [(submission: Submission, index: Int)] = []
            for submission in submissions {
                for index in submission.items.indices { queue.append((submission, index)) }
            }
            do {
                try decode(queue, chunkSize: queue.count <= smallRoundLimit ? 1 : batch.capacity)
            } catch {
                let unfinished = submissions.filter { $0.decoded < $0.items.count }
                if error == .decodeFailed(code: 1) && unfinished.count > 1 {
                    // The batch does not fit: the rest goes one run at a time, so that only a run that
                    // does not fit on its own fails.
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
}
