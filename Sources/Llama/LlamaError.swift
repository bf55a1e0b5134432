/// Everything that can go wrong between Swift and llama.cpp, each with a message a user can act on.
public enum LlamaError: Error, Sendable, Equatable, CustomStringConvertible {
    case fileNotFound(path: String)
    case notGGUF(path: String, reason: String)
    case loadFailed(path: String)
    case contextCreationFailed(reason: String)
    case tokenizationFailed(reason: String)
    case chatTemplateUnavailable
    case chatTemplateFailed(reason: String)
    /// `llama_decode` refused the batch; the code is llama.cpp's (1: no KV slot, -1: invalid batch, …).
    case decodeFailed(code: Int32)
    /// The abort callback stopped the decode (llama_decode returned 2).
    case decodeAborted
    case contextFull(needed: Int, capacity: Int)
    /// The attention tap met a tensor it cannot read (type or shape); the message says which.
    case attentionUnreadable(String)

    public var description: String {
        switch self {
        case .fileNotFound(let path): return "model file not found: \(path)"
        case .notGGUF(let path, let reason): return "not a GGUF model file: \(path) (\(reason))"
        case .loadFailed(let path): return "llama.cpp could not load the model: \(path) (see the log on stderr)"
        case .contextCreationFailed(let reason): return "could not create a llama.cpp context: \(reason)"
        case .tokenizationFailed(let reason): return "tokenization failed: \(reason)"
        case .chatTemplateUnavailable: return "the model has no chat template"
        case .chatTemplateFailed(let reason): return "the chat template could not be applied: \(reason)"
        case .decodeFailed(let code):
            let meaning =
                switch code {
                case 1: "no free KV cache slot: the context is full"
                case -1: "invalid input batch"
                default: "fatal error"
                }
            return "llama_decode failed with \(code): \(meaning)"
        case .decodeAborted: return "decoding was aborted"
        case .contextFull(let needed, let capacity):
            return "the text needs \(needed) tokens but the context holds \(capacity)"
        case .attentionUnreadable(let reason): return "attention probabilities could not be read: \(reason)"
        }
    }
}
