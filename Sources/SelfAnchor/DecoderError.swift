import Llama
import Synchronization

/// A flag another thread sets to stop a running solve. The decoder checks it before every token and
/// llama.cpp polls it inside `llama_decode`, so a cancel takes effect within one decode step.
public final class CancellationFlag: Sendable {
    private let state = Atomic<Bool>(false)
    public init() {}
    public func cancel() { state.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { state.load(ordering: .relaxed) }
}

/// Why a solve did not produce a result.
public enum DecoderError: Error, Sendable, CustomStringConvertible {
    /// Stopped by its cancellation flag; what was generated until then is in `partial`.
    case cancelled(partial: SolveResult)
    /// The prompt alone does not fit the context.
    case promptTooLong(tokens: Int, capacity: Int)
    /// A request is unusable (an anchor not in the prompt, say); `field` is the one to blame, as its
    /// path under the request's params (`options.anchors`), when there is one.
    case invalidRequest(String, field: String? = nil)
    case llama(LlamaError)

    public var description: String {
        switch self {
        case .cancelled: return "cancelled"
        case .promptTooLong(let tokens, let capacity):
            return "the prompt has \(tokens) tokens but the context holds \(capacity)"
        case .invalidRequest(let message, let field): return field.map { "\($0): \(message)" } ?? message
        case .llama(let error): return error.description
        }
    }
}
