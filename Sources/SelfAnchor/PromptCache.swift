import Llama
import Synchronization

/// The prompt prefix that requests of a kind share (chat template and system prompt, up to where the
/// question starts), kept in KV sequence `sequence` between requests so that the next request of that
/// kind does not decode it again. It is refilled only when no request uses it.
final class PromptCache: Sendable {
    /// The KV sequence that holds the prefix.
    static let sequence: Int32 = 0
    /// Prefixes shorter than this are not worth caching.
    static let minimumLength = 16

    /// What a request asking for a prefix gets.
    enum Claim {
        /// The prefix is there; the request uses it (and must `release` it).
        case ready
        /// The request is to decode it there (nobody used the old one), then call `finishFilling`.
        case fill
        /// It cannot be had now (being filled, or another prefix is in use).
        case unavailable
    }

    private struct State {
        var tokens: [LlamaToken] = []
        var filling = false
        var users = 0
    }
    private let state = Mutex(State())
    private let scheduler: ContextScheduler

    init(scheduler: ContextScheduler) {
        self.scheduler = scheduler
    }

    /// A request wants `prefix`: it is there (`ready`), or the request is to fill it (`fill`), or not now.
    func claim(_ prefix: [LlamaToken]) -> Claim {
        state.withLock { state in
            if state.filling { return .unavailable }
            if state.tokens == prefix {
                state.users += 1
                return .ready
            }
            guard state.users == 0 else { return .unavailable }
            state = State(tokens: [], filling: true, users: 1)
            emptySequence()
            return .fill
        }
    }

    /// The request that claimed `fill` is done filling (nil: it failed, and the sequence is emptied).
    func finishFilling(_ prefix: [LlamaToken]?) {
        state.withLock { state in
            state.filling = false
            state.tokens = prefix ?? []
            if prefix == nil { emptySequence() }
        }
    }

    /// A request that claimed the prefix has ended.
    func release() {
        state.withLock { $0.users -= 1 }
    }

    /// Forgets the prefix (the next request decodes it again), unless a request uses it. From any thread:
    /// it runs on the scheduler's, where the requests claim and fill it.
    func drop() {
        scheduler.perform { _ in
            self.state.withLock { state in
                guard state.users == 0 && !state.filling else { return }
                state.tokens = []
                self.emptySequence()
            }
        }
    }

    /// Called on the scheduler's thread (by a request, or by `drop`).
    private func emptySequence() {
        _ = scheduler.withContext { $0.removeTokens(sequence: Self.sequence) }
    }
}
