import Llama

/// Which tokens each llama.cpp sequence holds in the KV cache, so that the decoder can state what a
/// sequence *should* hold and have only the difference decoded.
///
/// `sync` is the one operation: for every target sequence it keeps the longest prefix already cached,
/// or shares a longer one from any other sequence (`llama_memory_seq_cp`; cells are shared, not
/// recomputed, with a unified KV cache), drops the rest, and decodes all targets' new tokens together in
/// as few `llama_decode` calls as the batch allows. That is how the real and masked contexts advance in
/// one batch per token, how switching anchors re-decodes only the span that differs, and how a new
/// request reuses a cached chat prefix.
final class SequenceCache {
    /// What a sequence should hold after `sync`, and whether its next-token logits are wanted.
    struct Target {
        var sequence: Int32
        var tokens: [LlamaToken]
        var wantsLogits: Bool
    }

    let context: LlamaContext
    private let batch: LlamaBatch
    private(set) var cached: [[LlamaToken]]
    /// The latest next-token logits per sequence (valid for targets that asked for them).
    private(set) var logits: [[Float]]
    /// For each sequence, the token count at which `logits` was computed (-1: stale).
    private var logitsAt: [Int]
    /// Tokens decoded per sequence since the last `resetCounters`.
    private(set) var decodedCounts: [Int]
    /// A target shares a prefix from another sequence only when that saves at least this many tokens.
    private let shareThreshold = 4

    init(context: LlamaContext) {
        self.context = context
        let sequences = context.options.sequences
        batch = LlamaBatch(capacity: context.options.batchSize)
        cached = Array(repeating: [], count: sequences)
        logits = Array(repeating: [], count: sequences)
        decodedCounts = Array(repeating: 0, count: sequences)
        logitsAt = Array(repeating: -1, count: sequences)
    }

    var sequenceCount: Int { cached.count }

    func resetCounters() { decodedCounts = Array(repeating: 0, count: cached.count) }

    /// Forgets everything (after an aborted or failed decode, when the cache state is unknown).
    func invalidateAll() {
        context.clearMemory()
        cached = Array(repeating: [], count: cached.count)
        logitsAt = Array(repeating: -1, count: cached.count)
    }

    /// Empties every sequence but `kept`, whose cells stay where they are.
    func clearAll(except kept: Int32) {
        for sequence in cached.indices where sequence != Int(kept) { clear(Int32(sequence)) }
    }

    /// Empties one sequence.
    func clear(_ sequence: Int32) {
        context.removeTokens(sequence: sequence)
        cached[Int(sequence)] = []
        logitsAt[Int(sequence)] = -1
    }

    /// Brings every target to its token list; see the type's documentation.
    func sync(_ targets: [Target]) throws(LlamaError) {
        var pending: [(target: Target, from: Int)] = []
        for target in targets {
            let seq = Int(target.sequence)
            // A target earlier in this call may be about to hold a long prefix of this one (the real and
            // masked prompts share the chat template and system prompt): decode it first, then share it.
            if let earlier = pending.map({ commonPrefix($0.target.tokens, target.tokens) }).max(),
               earlier > bestCachedPrefix(for: target, sequence: seq).length + shareThreshold
            {
                try decode(pending)
                pending.removeAll()
            }
            var keep = commonPrefix(cached[seq], target.tokens)
            if target.tokens.count - keep > 1 {
                let donor = bestCachedPrefix(for: target, sequence: seq)
                if donor.sequence >= 0 && donor.length > keep + shareThreshold {
                    context.removeTokens(sequence: target.sequence)
                    logitsAt[seq] = -1
                    context.copyTokens(from: Int32(donor.sequence), to: target.sequence, positions: 0,
                                       upTo: Int32(donor.length))
                    cached[seq] = Array(target.tokens[0..<donor.length])
                    keep = donor.length
                }
            }
            if target.wantsLogits && keep == target.tokens.count && keep > 0 {
                // Already there: the logits are current unless the sequence changed since they were computed.
                if logitsAt[seq] == keep && cached[seq].count == keep { continue }
                keep -= 1
            }
            if keep < cached[seq].count {
                logitsAt[seq] = -1
                if !context.removeTokens(sequence: target.sequence, from: Int32(keep)) {
                    context.removeTokens(sequence: target.sequence)
                    cached[seq] = []
                    keep = 0
                } else {
                    cached[seq].removeLast(cached[seq].count - keep)
                }
            }
            pending.append((target, keep))
        }
        try decode(pending)
    }

    /// The other sequence sharing the longest cached prefix with the target's tokens.
    private func bestCachedPrefix(for target: Target, sequence: Int) -> (sequence: Int, length: Int) {
        var best = (sequence: -1, length: 0)
        for other in cached.indices where other != sequence {
            let length = commonPrefix(cached[other], target.tokens)
            if length > best.length { best = (other, length) }
        }
        return best
    }

    /// Decodes each pending target's tokens from its `from` index, chunked to the batch capacity.
    private func decode(_ pending: [(target: Target, from: Int)]) throws(LlamaError) {
        var items: [(sequence: Int32, position: Int, token: LlamaToken, output: Bool)] = []
        for (target, from) in pending where from < target.tokens.count {
            for position in from..<target.tokens.count {
                let isLast = position == target.tokens.count - 1
                items.append((target.sequence, position, target.tokens[position], isLast && target.wantsLogits))
            }
        }
        var start = 0
        while start < items.count {
            let chunk = items[start..<min(items.count, start + batch.capacity)]
            batch.clear()
            var outputs: [(sequence: Int32, index: Int32)] = []
            for item in chunk {
                let index = batch.add(item.token, position: Int32(item.position), sequences: [item.sequence],
                                      logits: item.output)
                if item.output { outputs.append((item.sequence, index)) }
            }
            do {
                try context.decode(batch)
            } catch {
                invalidateAll()
                throw error
            }
            for item in chunk {
                cached[Int(item.sequence)].append(item.token)
                decodedCounts[Int(item.sequence)] += 1
            }
            for output in outputs {
                let sequence = Int(output.sequence)
                let source = context.logits(at: output.index)
                if logits[sequence].count == source.count {
                    logits[sequence].withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: source) }
                } else {
                    logits[sequence] = Array(source)
                }
                logitsAt[sequence] = cached[sequence].count
            }
            start += chunk.count
        }
    }

    private func commonPrefix(_ a: [LlamaToken], _ b: [LlamaToken]) -> Int {
        let limit = min(a.count, b.count)
        var index = 0
        while index < limit && a[index] == b[index] { index += 1 }
        return index
    }
}
