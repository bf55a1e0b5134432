import CLlama

/// One layer's attention probabilities for the query tokens of one micro-batch, as llama.cpp computed
/// them (its `kq_soft_max-<layer>` tensor, which exists only with flash attention off).
///
/// Exists so that attention can be read without holding it: a value is valid only inside the
/// `AttentionTap` handler that receives it. Rows are per *query* head: with grouped-query attention
/// (fewer KV heads than query heads) query head `h` reads KV head `h / (headCount / kvHeadCount)`, and
/// llama.cpp's matrix product broadcasts the KV heads, so every query head has its own row here.
/// Columns are KV cells; in a context that holds one sequence decoded from position 0 with nothing
/// removed, cell `c` holds position `c`, and cells past the last decoded token have probability 0.
public struct AttentionProbabilities {
    /// The layer (0-based).
    public let layer: Int
    /// KV cells per row (columns), at least the number of tokens decoded so far.
    public let keyCount: Int
    /// Tokens in the micro-batch (rows per head), in the order they were added to the batch.
    public let queryCount: Int
    /// Query heads.
    public let headCount: Int
    private let base: UnsafePointer<Float>

    init(layer: Int, keyCount: Int, queryCount: Int, headCount: Int, base: UnsafePointer<Float>) {
        self.layer = layer
        self.keyCount = keyCount
        self.queryCount = queryCount
        self.headCount = headCount
        self.base = base
    }

    /// The probabilities of query `query` (index in the micro-batch) under head `head`, one per KV cell.
    public func row(head: Int, query: Int) -> UnsafeBufferPointer<Float> {
        precondition(head < headCount && query < queryCount)
        return UnsafeBufferPointer(start: base + (head * queryCount + query) * keyCount, count: keyCount)
    }
}

/// Reads the attention probabilities of chosen layers while a context decodes, through llama.cpp's
/// graph eval callback (`cb_eval`). Exists because llama.cpp has no API that returns attention maps.
///
/// Give it to `LlamaContext(model:options:attention:)`; that context must run with flash attention off
/// (it is forced off there). The handler runs on the decoding thread, once per chosen layer per
/// micro-batch; it must copy what it needs before returning.
public final class AttentionTap {
    /// Layers whose probabilities are delivered.
    public let layers: Set<Int>
    private let handler: (AttentionProbabilities) -> Void
    /// Holds a copy when the tensor is not in host memory or not contiguous.
    private var scratch: [Float] = []
    /// Why the last delivery failed (an unexpected tensor type or shape); nil when all went well.
    public private(set) var failure: String?

    /// Query heads per layer the tensor must have (0: not checked).
    let queryHeads: Int

    /// A tap for `layers`. With `queryHeads` (the model's `headCount`), a tensor laid out any other way
    /// — for instance with grouped-query heads folded into the rows — is refused with a clear error
    /// instead of being misread.
    public init(layers: some Sequence<Int>, queryHeads: Int = 0, handler: @escaping (AttentionProbabilities) -> Void) {
        self.layers = Set(layers)
        self.queryHeads = queryHeads
        self.handler = handler
    }

    private static let prefix = Array("kq_soft_max-".utf8)

    /// The layer of an attention-probability tensor, from its name `kq_soft_max-<layer>`.
    static func layer(of tensor: UnsafePointer<ggml_tensor>) -> Int? {
        withUnsafeBytes(of: tensor.pointee.name) { name -> Int? in
            guard name.count > prefix.count else { return nil }
            for (index, byte) in prefix.enumerated() where name[index] != byte { return nil }
            var layer = 0
            var index = prefix.count
            while index < name.count, name[index] != 0 {
                let digit = Int(name[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                layer = layer * 10 + digit
                index += 1
            }
            return index > prefix.count ? layer : nil
        }
    }

    func wants(_ tensor: UnsafePointer<ggml_tensor>) -> Bool {
        guard let layer = Self.layer(of: tensor) else { return false }
        return layers.contains(layer)
    }

    /// Hands the computed tensor to the handler. Returns false (which makes llama.cpp abort the
    /// decode) only when the tensor cannot be read.
    func deliver(_ tensor: UnsafePointer<ggml_tensor>) -> Bool {
        guard let layer = Self.layer(of: tensor) else { return true }
        let t = tensor.pointee
        guard t.type == GGML_TYPE_F32 else {
            failure = "layer \(layer): attention tensor has ggml type \(t.type.rawValue), expected F32"
            return false
        }
        let (keys, queries, heads, streams) = (Int(t.ne.0), Int(t.ne.1), Int(t.ne.2), Int(t.ne.3))
        guard queryHeads == 0 || heads == queryHeads else {
            failure = "layer \(layer): attention tensor has \(heads) heads, the model \(queryHeads) query heads; "
                + "this llama.cpp build lays grouped-query attention out in a way selfanchor does not read"
            return false
        }
        guard streams == 1 else {
            failure = "layer \(layer): attention tensor has \(streams) KV streams; use one sequence"
            return false
        }
        let count = keys * queries * heads
        let contiguous = t.nb.0 == 4 && t.nb.1 == 4 * keys && t.nb.2 == 4 * keys * queries
        if contiguous, let buffer = t.buffer, ggml_backend_buffer_is_host(buffer), let data = t.data {
            let probabilities = AttentionProbabilities(
                layer: layer, keyCount: keys, queryCount: queries, headCount: heads,
                base: UnsafePointer(data.assumingMemoryBound(to: Float.self)))
            handler(probabilities)
            return true
        }
        // On a device, or strided: copy row by row into host memory.
        if scratch.count < count { scratch = Array(repeating: 0, count: count) }
        scratch.withUnsafeMutableBufferPointer { destination in
            for head in 0..<heads {
                for query in 0..<queries {
                    let offset = head * Int(t.nb.2) + query * Int(t.nb.1)
                    if t.nb.0 == 4 {
                        ggml_backend_tensor_get(tensor, destination.baseAddress! + (head * queries + query) * keys,
                                                offset, keys * 4)
                    } else {
                        for key in 0..<keys {
                            ggml_backend_tensor_get(tensor, destination.baseAddress! + (head * queries + query) * keys + key,
                                                    offset + key * Int(t.nb.0), 4)
                        }
                    }
                }
            }
        }
        scratch.withUnsafeBufferPointer { source in
            let probabilities = AttentionProbabilities(layer: layer, keyCount: keys, queryCount: queries,
                                                       headCount: heads, base: source.baseAddress!)
            handler(probabilities)
        }
        return true
    }
}
