import Llama

/// Which tokens each of a run's llama.cpp sequences holds in the KV cache, so that the decoder can
/// state what a sequence *should* hold and have only the difference decoded.
///
/// `sync` is the one operation: for every target sequence it keeps the longest prefix already cached,
/// or shares a longer one from another of the run's sequences or the engine's prompt cache
/// (`llama_memory_seq_cp`; cells are shared, not recomputed, with a unified KV cache), drops the rest,
/// and decodes all targets' new tokens together, through the engine's `ContextScheduler` (which adds
/// the tokens of the other requests decoding at the same time). That is how the real and masked
/// contexts advance in one batch per token, how switching anchors re-decodes only the span that
/// differs, and how a new request reuses a cached chat prefix.
final class SequenceCache {
    /// What a sequence should hold after `sync`, and whether its next-token logits are wanted.
    struct Target {
        var sequence: Int32
        var tokens: [LlamaToken]
        var wantsLogits: Bool
        /// Also keep the logits after every position from this one on (in order, in `collected`):
        /// the speculative masked pass verifies a whole draft from one decode.
        var logitsFrom: Int? = nil
    }

    let scheduler: ContextScheduler
    let cancellation: CancellationFlag
    /// The sequences this cache tracks: the run's own, and the prompt cache's (a donor; the run
    /// writes to it only when the engine lets it refill the prompt cache).
    private(set) var sequences: [Int32]
    private(set) var cached: [Int32: [LlamaToken]] = [:]
    /// The latest next-token logits per sequence (valid for targets that asked for them).
    private(set) var logits: [Int32: [Float]] = [:]
    /// The logits `Target.logitsFrom` asked for, per sequence, from the latest `sync`.
    private(set) var collected: [Int32: [[Float]]] = [:]
    /// For each sequence, the token count at which `logits` was computed (-1: stale).
    private var logitsAt: [Int32: Int] = [:]
    /// Tokens decoded per sequence since the cache was made.
    private(set) var decodedCounts: [Int32: Int] = [:]
    /// A target shares a prefix from another sequence only when that saves at least this many tokens.
    private let shareThreshold = 4

    /// Tracks the given sequences, which start empty (`track` adds the prompt cache's).
    init(scheduler: ContextScheduler, sequences: [Int32], cancellation: CancellationFlag) {
        self.scheduler = scheduler
        self.sequences = []
        self.cancellation = cancellation
        for sequence in sequences { track(sequence, holding: []) }
    }

    func decodedCount(_ sequence: Int32) -> Int { decodedCounts[sequence] ?? 0 }

    /// The latest next-token logits of a sequence (empty before any were computed).
    func logits(_ sequence: Int32) -> [Float] { logits[sequence] ?? [] }

    /// Starts tracking another sequence (the prompt cache), which holds `tokens`.
    func track(_ sequence: Int32, holding tokens: [LlamaToken]) {
        if !sequences.contains(sequence) { sequences.append(sequence) }
        cached[sequence] = tokens
        logitsAt[sequence] = -1
        decodedCounts[sequence] = decodedCounts[sequence] ?? 0
    }

    /// Empties the given sequences.
    func clear(_ cleared: [Int32]) {
        scheduler.withContext { context in
            for sequence in cleared { context.removeTokens(sequence: sequence) }
        }
        for sequence in cleared { forget(sequence) }
    }

    /// Forgets what a sequence holds without touching the KV cache (another run emptied it).
    func forget(_ sequence: Int32) {
        cached[sequence] = []
        logitsAt[sequence] = -1
    }

    /// Brings every target to its token list; see the type's documentation.
    func sync(_ targets: [Target]) async throws(LlamaError) {
        collected.removeAll(keepingCapacity: true)
        var pending: [(target: Target, from: Int)] = []
        for target in targets {
            let seq = target.sequence
            // A target earlier in this call may be about to hold a long prefix of this one (the real and
            // masked prompts share the chat template and system prompt): decode it first, then share it.
            if let earlier = pending.map({ commonPrefix($0.target.tokens, target.tokens) }).max(),
               earlier > bestCachedPrefix(for: target, sequence: seq).length + shareThreshold
            {
                try await decode(pending)
                pending.removeAll()
            }
            var keep = commonPrefix(cached[seq] ?? [], target.tokens)
            if let from = target.logitsFrom {
                collected[seq] = []
                keep = min(keep, from)
            }
            if target.tokens.count - keep > 1 {
                let donor = bestCachedPrefix(for: target, sequence: seq)
                if donor.sequence >= 0 && donor.length > keep + shareThreshold {
                    scheduler.withContext { context in
                        context.removeTokens(sequence: target.sequence)
                        context.copyTokens(from: donor.sequence, to: target.sequence, positions: 0, upTo: Int32(donor.length))
                    }
                    logitsAt[seq] = -1
                    cached[seq] = Array(target.tokens[0..<donor.length])
                    keep = donor.length
                }
            }
            if target.wantsLogits && keep == target.tokens.count && keep > 0 {
                // Already there: the logits are current unless the sequence changed since they were computed.
                if logitsAt[seq] == keep && cached[seq]?.count == keep { continue }
                keep -= 1
            }
            if keep < cached[seq]?.count ?? 0 {
                logitsAt[seq] = -1
                let removed = scheduler.withContext { context in
                    if context.removeTokens(sequence: target.sequence, from: Int32(keep)) { return true }
                    context.removeTokens(sequence: target.sequence)
                    return false
                }
                if removed {
                    cached[seq] = Array((cached[seq] ?? []).prefix(keep))
                } else {
                    cached[seq] = []
                    keep = 0
                }
            }
            pending.append((target, keep))
        }
        try await decode(pending)
    }

    /// The other sequence sharing the longest cached prefix with the target's tokens.
    private func bestCachedPrefix(for target: Target, sequence: Int32) -> (sequence: Int32, length: Int) {
        var best = (sequence: Int32(-1), length: 0)
        for other in sequences where other != sequence {
            let length = commonPrefix(cached[other] ?? [], target.tokens)
            if length > best.length { best = (other, length) }
        }
        return best
    }

    /// Decodes each pending target's tokens from its `from` index, with the other runs' tokens.
    private func decode(_ pending: [(target: Target, from: Int)]) async throws(LlamaError) {
        var items: [ContextScheduler.Item] = []
        for (target, from) in pending where from < target.tokens.count {
            for position in from..<target.tokens.count {
                let isLast = position == target.tokens.count - 1
                let collects = target.logitsFrom.map { position >= $0 } ?? false
                items.append(.init(sequence: target.sequence, position: position, token: target.tokens[position],
                                   wantsLogits: collects || (isLast && target.wantsLogits)))
            }
        }
        guard !items.isEmpty else { return }
        // With other requests in flight, a long prompt goes in pieces, one per batch, so that their
        // tokens keep coming between the pieces (chunked prefill).
        let piece = scheduler.runCount > 1 ? max(1, scheduler.batchSize / 2) : items.count
        var start = 0
        while start < items.count {
            let slice = Array(items[start..<min(items.count, start + piece)])
            let submission = await scheduler.decode(slice, cancellation: cancellation) { [self] sequence, source in
                if collected[sequence] != nil { collected[sequence]!.append(Array(source)) }
                if logits[sequence]?.count == source.count {
                    logits[sequence]!.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: source) }
                } else {
                    logits[sequence] = Array(source)
                }
            }
            for item in slice.prefix(submission.decoded) {
                cached[item.sequence, default: []].append(item.token)
                decodedCounts[item.sequence, default: 0] += 1
                logitsAt[item.sequence] = item.wantsLogits ? cached[item.sequence]?.count ?? -1 : -1
            }
            if let error = submission.error {
                if error != .decodeFailed(code: 1) {
                    // Aborted or failed: what the cache holds for the rest is unknown. Empty those sequences.
                    clear(Array(Set(items.dropFirst(start + submission.decoded).map(\.sequence))))
                }
                throw error
            }
            start += slice.count
        }
    }

    private func commonPrefix(_ a: [LlamaToken], _ b: [LlamaToken]) -> Int {
        let limit = min(a.count, b.count)
        var index = 0
        while index < limit && a[index] == b[index] { index += 1 }
        return index
    }
}
