#if canImport(Glibc)
    import Glibc
#endif

/// Where selfanchor's models live, and what the names `default` and `test` mean.
///
/// Models are installed by `scripts/install_models.py` into `$SELFANCHOR_MODELS`, else
/// `$XDG_CACHE_HOME/selfanchor/models`, else `~/.cache/selfanchor/models`. Anything else is a path.
public enum ModelCatalog {
    /// A model the project installs, by the name users type.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let fileName: String
        public let summary: String
    }

    public static let defaultModel = Entry(
        name: "default", fileName: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        summary: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M")
    public static let testModel = Entry(
        name: "test", fileName: "smollm2-135m-instruct-q4_1.gguf", summary: "SmolLM2-135M-Instruct Q4_1")
    public static let entries = [defaultModel, testModel]

    /// The model cache directory.
    public static var directory: String {
        if let explicit = environment("SELFANCHOR_MODELS"), !explicit.isEmpty { return explicit }
        let cache = environment("XDG_CACHE_HOME").flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment("HOME") ?? "/tmp") + "/.cache")
        return cache + "/selfanchor/models"
    }

    /// The file for a model argument: "default", "test", or a path (returned as given).
    public static func path(for argument: String) -> String {
        if let entry = entries.first(where: { $0.name == argument }) { return directory + "/" + entry.fileName }
        return argument
    }

    /// Whether the argument names a catalog model rather than a path.
    public static func isCatalogName(_ argument: String) -> Bool { entries.contains { $0.name == argument } }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
