import CLlama

#if canImport(Glibc)
    import Glibc
#endif

/// How a context is sized and run.
public struct ContextOptions: Sendable, Equatable {
    /// Token slots in the KV cache, shared by all sequences (0: the model's training length).
    public var contextSize: Int = 4096
    /// The most tokens one `decode` call may hold.
    public var batchSize: Int = 512
    /// The most sequences (independent continuations) the cache tracks at once.
    public var sequences: Int = 4
    /// CPU threads for decoding; 0 means one per online core.
    public var threads: Int = 0
    /// One KV buffer for all sequences, so that `copy` shares cells instead of duplicating them.
    /// Required for copying partial ranges between sequences.
    public var unifiedKV: Bool = true
    /// Fused attention; must be off when attention probabilities are read through the eval callback.
    public var flashAttention: Bool? = nil
    /// Decodes may use half the threads while that is faster (another process on the same cores;
    /// `ThreadGovernor`); false: every decode uses `threads`.
    public var adaptiveThreads: Bool = true

    public init() {}

    /// Threads to use: `threads`, or the number of online cores.
    public var effectiveThreads: Int32 {
        threads > 0 ? Int32(threads) : Int32(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

/// A llama.cpp context: the KV cache and compute state for decoding with one model.
///
/// Owns the `llama_context` handle (freed in `deinit`) and keeps its model alive. Not thread-safe:
/// one thread decodes at a time. `shouldAbort` may be set from the decoding thread and is polled by
/// llama.cpp between graph nodes, which is what makes cancellation take effect inside a long decode.
/// Unchecked: a C handle Swift cannot check; its users serialise decodes (`ComputeThread`; an engine's `ContextScheduler` is its context's one user).
public final class LlamaContext: @unchecked Sendable {
    let pointer: OpaquePointer
    public let model: LlamaModel
    public let options: ContextOptions
    /// Polled during `decode`; returning true aborts it with `LlamaError.decodeAborted`.
    public var shouldAbort: (() -> Bool)?
    /// Receives attention probabilities during `decode` (nil: none are read).
    public let attentionTap: AttentionTap?
    /// Chooses each decode's threads while `adaptsThreads` (nil: one thread, nothing to choose).
    public private(set) var threadGovernor: ThreadGovernor?
    /// Whether the governor chooses (false: every decode on all threads; the governor keeps what it learnt).
    public private(set) var adaptsThreads: Bool
    /// The thread count llama.cpp was last told.
    private var threadsSet: Int32

    /// A context; with an `attention` tap, flash attention is off and the tap's layers are read on every decode.
    public init(model: LlamaModel, options: ContextOptions = ContextOptions(), attention: AttentionTap? = nil)
        throws(LlamaError)
    {
        var options = options
        if attention != nil { options.flashAttention = false }
        var params = llama_context_default_params()
        params.n_ctx = UInt32(options.contextSize)
        params.n_batch = UInt32(options.batchSize)
        params.n_ubatch = UInt32(min(options.batchSize, 512))
        params.n_seq_max = UInt32(options.sequences)
        params.n_threads = options.effectiveThreads
        params.n_threads_batch = options.effectiveThreads
        params.kv_unified = options.unifiedKV
        params.no_perf = true
        if let flash = options.flashAttention {
            params.flash_attn_type = flash ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED
        }
        if let attention {
            params.cb_eval = { tensor, ask, data in
                guard let tensor, let data else { return true }
                let tap = Unmanaged<AttentionTap>.fromOpaque(data).takeUnretainedValue()
                return ask ? tap.wants(tensor) : tap.deliver(tensor)
            }
            params.cb_eval_user_data = Unmanaged.passUnretained(attention).toOpaque()
        }
        guard let context = llama_init_from_model(model.pointer, params) else {
            throw .contextCreationFailed(reason: "llama_init_from_model returned NULL (context size \(options.contextSize))")
        }
        self.pointer = context
        self.model = model
        self.options = options
        self.attentionTap = attention
        self.threadsSet = options.effectiveThreads
        self.threadGovernor = ThreadGovernor(threads: options.effectiveThreads)
        self.adaptsThreads = options.adaptiveThreads
        llama_set_abort_callback(
            context,
            { data in
                guard let data else { return false }
                let context = Unmanaged<LlamaContext>.fromOpaque(data).takeUnretainedValue()
                return context.shouldAbort?() ?? false
            }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        llama_free(pointer)
    }

    /// KV cache capacity in tokens.
    public var capacity: Int { Int(llama_n_ctx(pointer)) }

    /// Runs the model over a batch. Logits of the tokens marked for output can then be read with `logits(at:)`.
    public func decode(_ batch: LlamaBatch) throws(LlamaError) {
        try decode(batch, threads: nil)
    }

    /// `decode` on `forced` threads (untimed: for measurements of the machine, such as
    /// `BatchCalibration`'s), or as the governor says (nil).
    public func decode(_ batch: LlamaBatch, threads forced: Int32?) throws(LlamaError) {
        guard batch.count > 0 else { return }
        let (pointer, raw) = (self.pointer, batch.raw)
        let governed = forced == nil && adaptsThreads && threadGovernor != nil
        let threads = forced ?? (governed ? threadGovernor!.threads(forTokens: batch.count) : options.effectiveThreads)
        if threads != threadsSet {
            llama_set_n_threads(pointer, threads, threads)
            threadsSet = threads
        }
        let start = ContinuousClock.now
        let result = ComputeThread.shared.run { llama_decode(pointer, raw) }
        if governed && result == 0 {
            threadGovernor!.record(tokens: batch.count, threads: threads, seconds: (ContinuousClock.now - start).milliseconds / 1000)
        }
        // A tap that cannot read its tensor stops the graph early; the decode's output is then unusable.
        if let failure = attentionTap?.failure { throw .attentionUnreadable(failure) }
        switch result {
        case 0: return
        case 2: throw .decodeAborted
        default: throw .decodeFailed(code: result)
        }
    }

    /// Lets the thread governor choose, or not (every decode on all threads); what it learnt is kept
    /// either way, as a daemon keeps it between requests. Not while a decode runs.
    public func setAdaptiveThreads(_ on: Bool) {
        adaptsThreads = on
    }

    /// Tells the governor what single-token decodes measured before any was governed (it starts on half
    /// the threads when they were clearly faster: a neighbour is already there).
    public func seedThreadGovernor(fullMs: Double, reducedMs: Double) {
        threadGovernor?.startReduced(fullMs: fullMs, reducedMs: reducedMs)
    }

    /// The next-token logits (one per vocabulary entry) for the batch entry at `index`,
    /// valid until the next decode.
    public func logits(at index: Int32) -> UnsafeBufferPointer<Float> {
        let base = llama_get_logits_ith(pointer, index)
        return UnsafeBufferPointer(start: base, count: model.vocabularySize)
    }

    // MARK: KV cache (llama_memory_*)

    private var memory: llama_memory_t { llama_get_memory(pointer) }

    /// Drops the sequence's cached tokens at positions in `from..<to` (to = nil: to the end).
    @discardableResult
    public func removeTokens(sequence: Int32, from: Int32 = 0, to: Int32? = nil) -> Bool {
        llama_memory_seq_rm(memory, sequence, from, to ?? -1)
    }

    /// Makes `destination` share `source`'s cached tokens at positions `from..<to` (to = nil: to the end).
    /// With a unified KV cache this shares cells; nothing is recomputed.
    public func copyTokens(from source: Int32, to destination: Int32, positions from: Int32 = 0, upTo to: Int32? = nil) {
        llama_memory_seq_cp(memory, source, destination, from, to ?? -1)
    }

    /// The largest cached position of the sequence, -1 when it is empty.
    public func lastPosition(sequence: Int32) -> Int32 { llama_memory_seq_pos_max(memory, sequence) }

    /// Forgets every sequence (the buffers are not zeroed: their cells are simply free).
    public func clearMemory() { llama_memory_clear(memory, false) }
}
