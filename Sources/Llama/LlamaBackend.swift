import CLlama
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// llama.cpp's process-wide state: backend initialisation (once) and where its log goes.
///
/// llama.cpp logs through a global callback; this routes it to stderr, filtered by level, so that
/// nothing it prints can reach stdout (which the daemon reserves for protocol messages).
public enum LlamaBackend {
    /// How much of llama.cpp's own log reaches stderr.
    public enum LogLevel: Int32, Sendable, CaseIterable {
        case debug = 1, info = 2, warning = 3, error = 4, none = 99
    }

    /// Read by llama.cpp's worker threads as they log; set by any thread.
    private static let level = Atomic<Int32>(LogLevel.error.rawValue)
    private static var threshold: Int32 { level.load(ordering: .relaxed) }
    private static let initialised: Void = {
        llama_log_set(
            { level, text, _ in
                guard let text else { return }
                // GGML_LOG_LEVEL_CONT (5) continues the previous line at its level; keep it when errors are shown.
                let effective = level.rawValue == 5 ? LlamaBackend.threshold : Int32(level.rawValue)
                if effective >= LlamaBackend.threshold && LlamaBackend.threshold != LogLevel.none.rawValue {
                    _ = write(2, text, strlen(text))
                }
            }, nil)
        llama_backend_init()
    }()

    /// Initialises llama.cpp (idempotent) and sets the log level.
    public static func initialise(logLevel: LogLevel? = nil) {
        if let logLevel { level.store(logLevel.rawValue, ordering: .relaxed) }
        _ = initialised
    }
}
