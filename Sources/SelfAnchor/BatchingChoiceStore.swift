import Llama
import TextFiles

#if canImport(Glibc)
    import Glibc
#endif

/// Remembers, per machine, model and thread count, whether small rounds are batched
/// (`BatchCalibration.smallRoundLimit`), so that every engine on this machine decodes the same way.
///
/// Why: a batch of two tokens and the same two tokens one per `llama_decode` give logits that differ in
/// the last bits (llama.cpp's CPU kernels sum in another order), and greedy decoding follows them at near
/// ties. Chosen afresh from timings at each start, the choice flipped with the machine's load at that
/// moment, and the same request answered differently from one daemon start to the next. The first engine
/// on a machine measures and stores its choice; later ones use it (and still measure, to report and to
/// seed the thread governor); `selfanchor bench` measures and stores it again.
///
/// One line per key, `key<TAB>limit`, in `$XDG_CACHE_HOME/selfanchor/batching.tsv` (else
/// `~/.cache/selfanchor/batching.tsv`); `SELFANCHOR_BATCHING_FILE` names another file.
public struct BatchingChoiceStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The store in the user's cache directory.
    public static var standard: BatchingChoiceStore {
        func environment(_ name: String) -> String? {
            getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        if let explicit = environment("SELFANCHOR_BATCHING_FILE") { return BatchingChoiceStore(path: explicit) }
        let cache = environment("XDG_CACHE_HOME") ?? ((environment("HOME") ?? "/tmp") + "/.cache")
        return BatchingChoiceStore(path: cache + "/selfanchor/batching.tsv")
    }

    /// What the choice depends on: the CPU, the model file, its offloaded layers and the thread count.
    public static func key(model: LlamaModel, threads: Int32) -> String {
        var info = stat()
        let size = stat(model.path, &info) == 0 ? Int(info.st_size) : 0
        let file = model.path.split(separator: "/").last.map(String.init) ?? model.path
        return "\(cpuName) | \(file) \(size) B | gpu layers \(model.gpuLayers) | threads \(threads)"
            .replacingTabs
    }

    /// The stored choice for `key`, if any.
    public func limit(for key: String) -> Int? {
        for line in lines() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            if fields.count == 2, fields[0] == key, let limit = Int(fields[1]), limit >= 0 { return limit }
        }
        return nil
    }

    /// Stores `limit` for `key` (replacing what was there); false when the file cannot be written.
    @discardableResult
    public func store(_ limit: Int, for key: String) -> Bool {
        var kept = lines().filter { !$0.hasPrefix(key + "\t") && !$0.isEmpty }
        kept.append("\(key)\t\(limit)")
        do {
            let directory = directoryOf(path)
            if !directory.isEmpty { try makeDirectory(directory) }
            try writeText(kept.joined(separator: "\n") + "\n", to: path)
            return true
        } catch {
            return false
        }
    }

    private func lines() -> [String] {
        guard let text = try? readText(path) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    /// The CPU's model name (`/proc/cpuinfo`), or "unknown CPU".
    static var cpuName: String {
        guard let file = fopen("/proc/cpuinfo", "r") else { return "unknown CPU" }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 1024)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") {
                return String(text[text.index(after: colon)...]).trimmingCharacters(" \t\n")
            }
        }
        return "unknown CPU"
    }
}

private extension String {
    var replacingTabs: String { String(map { $0 == "\t" || $0 == "\n" ? " " : $0 }) }
}
