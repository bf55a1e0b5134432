import CLlama

/// Input for one `llama_decode`: tokens with their positions, sequence ids and whether to output logits.
///
/// Owns the arrays `llama_batch_init` allocates (freed in `deinit`). One batch may carry tokens of
/// several sequences; that is how the real and masked contexts are decoded in a single call.
public final class LlamaBatch {
    var raw: llama_batch
    /// The most tokens the batch holds.
    public let capacity: Int
    /// The most sequence ids one token may carry.
    public let maxSequencesPerToken: Int

    public init(capacity: Int, maxSequencesPerToken: Int = 1) {
        self.raw = llama_batch_init(Int32(capacity), 0, Int32(maxSequencesPerToken))
        self.capacity = capacity
        self.maxSequencesPerToken = maxSequencesPerToken
    }

    deinit {
        llama_batch_free(raw)
    }

    public var count: Int { Int(raw.n_tokens) }
    public var isFull: Bool { count >= capacity }

    public func clear() { raw.n_tokens = 0 }

    /// Appends a token; returns its index in the batch (the index for `LlamaContext.logits(at:)`).
    @discardableResult
    public func add(_ token: LlamaToken, position: Int32, sequences: [Int32], logits: Bool) -> Int32 {
        precondition(count < capacity, "LlamaBatch overflow: capacity \(capacity)")
        precondition(!sequences.isEmpty && sequences.count <= maxSequencesPerToken, "bad sequence list")
        let index = Int(raw.n_tokens)
        raw.token[index] = token
        raw.pos[index] = position
        raw.n_seq_id[index] = Int32(sequences.count)
        for (slot, sequence) in sequences.enumerated() { raw.seq_id[index]![slot] = sequence }
        raw.logits[index] = logits ? 1 : 0
        raw.n_tokens += 1
        return Int32(index)
    }

    /// Appends a run of tokens of one sequence at consecutive positions; only the last may output logits.
    /// Returns the index of the last token.
    @discardableResult
    public func add(_ tokens: some Collection<LlamaToken>, startingAt position: Int32, sequence: Int32,
                    logitsForLast: Bool) -> Int32
    {
        var index: Int32 = -1
        for (offset, token) in tokens.enumerated() {
            let isLast = offset == tokens.count - 1
            index = add(token, position: position + Int32(offset), sequences: [sequence], logits: isLast && logitsForLast)
        }
        return index
    }
}
