import CLlama

#if canImport(Glibc)
    import Glibc
#endif

/// How the next token is chosen from logits.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 picks the most likely token (greedy); above 0 samples from the tempered distribution.
    public var temperature: Float = 0
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `topP` (1 keeps all).
    public var topP: Float = 1
    /// Keep only the `topK` most likely tokens (0 keeps all).
    public var topK: Int32 = 0
    /// Seed of the random draw, for reproducible sampling.
    public var seed: UInt32 = 0

    public init(temperature: Float = 0, topP: Float = 1, topK: Int32 = 0, seed: UInt32 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
    }

    public var isGreedy: Bool { temperature <= 0 }
}

/// A llama.cpp sampler: the shaping chain (top-k → top-p → temperature) and a seeded draw, or greedy.
///
/// Owns both handles (freed in `deinit`). It samples from any logits array, which is how steered
/// logits (not the context's own) are sampled with llama.cpp's samplers. The shaping stages exist once:
/// `sample` applies them and then the draw, `distribution` applies them alone.
public final class LlamaSampler {
    /// top-k → top-p → temperature; nil when greedy.
    private let shaping: UnsafeMutablePointer<llama_sampler>?
    /// The seeded draw from the shaped candidates; nil when greedy.
    private let draw: UnsafeMutablePointer<llama_sampler>?
    public let options: SamplingOptions
    private var candidates: [llama_token_data] = []

    public init(options: SamplingOptions = SamplingOptions()) {
        self.options = options
        if options.isGreedy {
            shaping = nil
            draw = nil
        } else {
            var params = llama_sampler_chain_default_params()
            params.no_perf = true
            let shaping = llama_sampler_chain_init(params)!
            if options.topK > 0 { llama_sampler_chain_add(shaping, llama_sampler_init_top_k(options.topK)) }
            if options.topP < 1 { llama_sampler_chain_add(shaping, llama_sampler_init_top_p(options.topP, 1)) }
            llama_sampler_chain_add(shaping, llama_sampler_init_temp(options.temperature))
            self.shaping = shaping
            draw = llama_sampler_init_dist(options.seed)
        }
    }

    deinit {
        if let shaping { llama_sampler_free(shaping) }
        if let draw { llama_sampler_free(draw) }
    }

    /// The distribution `sample` draws from (after top-k, top-p and temperature), as token →
    /// probability over the tokens it keeps; greedy: the argmax with probability 1.
    public func distribution(_ logits: UnsafeBufferPointer<Float>) -> [LlamaToken: Double] {
        guard let shaping else { return [Self.argmax(logits): 1] }
        fillCandidates(logits)
        return candidates.withUnsafeMutableBufferPointer { buffer in
            var array = llama_token_data_array(data: buffer.baseAddress, size: buffer.count, selected: -1, sorted: false)
            llama_sampler_apply(shaping, &array)
            var top = -Float.infinity
            for index in 0..<array.size where array.data[index].logit > top { top = array.data[index].logit }
            var weights: [LlamaToken: Double] = [:]
            var total = 0.0
            for index in 0..<array.size {
                let weight = Double(expf(array.data[index].logit - top))
                guard weight > 0 else { continue }
                weights[array.data[index].id] = weight
                total += weight
            }
            return weights.mapValues { $0 / total }
        }
    }

    private func fillCandidates(_ logits: UnsafeBufferPointer<Float>) {
        if candidates.count != logits.count {
            candidates = (0..<logits.count).map { llama_token_data(id: LlamaToken($0), logit: 0, p: 0) }
        }
        for index in 0..<logits.count {
            candidates[index].id = LlamaToken(index)
            candidates[index].logit = logits[index]
            candidates[index].p = 0
        }
    }

    /// Chooses a token from a full-vocabulary logits array.
    public func sample(_ logits: UnsafeBufferPointer<Float>) -> LlamaToken {
        guard let shaping, let draw else { return Self.argmax(logits) }
        fillCandidates(logits)
        return candidates.withUnsafeMutableBufferPointer { buffer in
            var array = llama_token_data_array(data: buffer.baseAddress, size: buffer.count, selected: -1, sorted: false)
            llama_sampler_apply(shaping, &array)
            llama_sampler_apply(draw, &array)
            return array.data[Int(array.selected)].id
        }
    }

    /// The index of the largest logit (ties: the lowest index), as llama.cpp's greedy sampler picks.
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> LlamaToken {
        var best = 0
        var bestValue = -Float.infinity
        for index in 0..<logits.count where logits[index] > bestValue {
            bestValue = logits[index]
            best = index
        }
        return LlamaToken(best)
    }
}
