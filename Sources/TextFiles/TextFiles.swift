#if canImport(Glibc)
    import Glibc
#endif

// Whole-file reads and writes for the few files selfanchor keeps of its own (eval's results and report,
// `solve --out`, analyze's report, the stored batching choice): one implementation, one set of messages.

/// Why a file could not be read, written or made; `description` names the path and the system's reason.
public struct FileError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }

    /// "cannot `verb` `path`: `strerror(errno)`".
    static func current(_ verb: String, _ path: String) -> FileError {
        FileError(description: "cannot \(verb) \(path): \(String(cString: strerror(errno)))")
    }
}

/// The contents of a file as UTF-8 text.
public func readText(_ path: String) throws(FileError) -> String {
    guard let file = fopen(path, "rb") else { throw .current("read", path) }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count == 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    if ferror(file) != 0 { throw .current("read", path) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes a whole file atomically: a temporary file beside it (named for this process), then a rename,
/// so a reader sees the old file or the new one, never half of one.
public func writeText(_ text: String, to path: String) throws(FileError) {
    let temporary = path + ".\(getpid()).tmp"
    guard let file = fopen(temporary, "wb") else { throw .current("write", path) }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) } == bytes.count
    let error = written ? nil : FileError.current("write", path)
    guard fclose(file) == 0, written else {
        let failure = error ?? .current("write", path)
        unlink(temporary)
        throw failure
    }
    guard rename(temporary, path) == 0 else {
        let failure = FileError.current("write", path)
        unlink(temporary)
        throw failure
    }
}

/// Creates a directory and its parents (existing ones are fine).
public func makeDirectory(_ path: String) throws(FileError) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        prefix += component + "/"
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw .current("create", prefix) }
    }
}

/// The directory part of a path ("" for a bare file name).
public func directoryOf(_ path: String) -> String {
    String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
}
