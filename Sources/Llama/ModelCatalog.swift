#if canImport(Glibc)
    import Glibc
#endif

/// Where selfanchor's models live, and what the names users type mean.
///
/// Models are installed by `scripts/install_models.py` into `$SELFANCHOR_MODELS`, else
/// `$XDG_CACHE_HOME/selfanchor/models`, else `~/.cache/selfanchor/models`. A model is named by its
/// catalog name (`qwen-1.5b`) or by an alias for a role (`default`, `fast`, `test`); anything else is
/// a path. The installer's table (`scripts/install_models.py`) lists the same names.
public enum ModelCatalog {
    /// A model the project installs, by the name users type.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let fileName: String
        public let summary: String
        public let sizeBytes: Int
    }

    public static let qwen15 = Entry(
        name: "qwen-1.5b", fileName: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        summary: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M", sizeBytes: 1_117_320_768)
    public static let qwen05 = Entry(
        name: "qwen-0.5b", fileName: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        summary: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M", sizeBytes: 491_400_064)
    public static let smollm = Entry(
        name: "smollm2-135m", fileName: "smollm2-135m-instruct-q4_1.gguf", summary: "SmolLM2-135M-Instruct Q4_1",
        sizeBytes: 98_362_432)
    public static let entries = [qwen15, qwen05, smollm]

    /// Names for a role: `default` answers best (chosen by measurement, README), `fast` for slow
    /// machines, `test` for the test suite.
    public static let aliases: [(alias: String, entry: Entry)] = [
        ("default", qwen15), ("fast", qwen05), ("test", smollm),
    ]

    /// The catalog entry a name means (a catalog name or an alias), nil for a path.
    public static func entry(named name: String) -> Entry? {
        aliases.first { $0.alias == name }?.entry ?? entries.first { $0.name == name }
    }

    public static var defaultModel: Entry { entry(named: "default")! }
    public static var testModel: Entry { entry(named: "test")! }

    /// Every name a user can type for a catalog model.
    public static var names: [String] { aliases.map(\.alias) + entries.map(\.name) }

    /// The model cache directory.
    public static var directory: String {
        if let explicit = environment("SELFANCHOR_MODELS"), !explicit.isEmpty { return explicit }
        let cache = environment("XDG_CACHE_HOME").flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment("HOME") ?? "/tmp") + "/.cache")
        return cache + "/selfanchor/models"
    }

    /// The file for a model argument: a catalog name or alias, or a path (returned as given).
    public static func path(for argument: String) -> String {
        if let entry = entry(named: argument) { return directory + "/" + entry.fileName }
        return argument
    }

    /// Whether the argument names a catalog model rather than a path.
    public static func isCatalogName(_ argument: String) -> Bool { entry(named: argument) != nil }

    /// Whether a catalog model's file is in the cache (present with its full size).
    public static func isInstalled(_ entry: Entry) -> Bool {
        var info = stat()
        return stat(directory + "/" + entry.fileName, &info) == 0 && Int(info.st_size) == entry.sizeBytes
    }

    /// What to tell a user whose catalog model is not installed.
    public static func installHint(for name: String) -> String {
        "install it with `selfanchor models install \(name)`"
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
