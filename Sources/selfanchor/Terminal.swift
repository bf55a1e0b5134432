#if canImport(Glibc)
    import Glibc
#endif

/// Unbuffered writes to stdout and stderr, with ANSI styling only when the stream is a terminal.
enum Terminal {
    static func write(_ text: String, to descriptor: Int32 = 1) {
        var remaining = Array(text.utf8)[...]
        while !remaining.isEmpty {
            let written = remaining.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            remaining = remaining.dropFirst(written)
        }
    }

    static func error(_ text: String) { write(text, to: 2) }

    static let stdoutIsTerminal = isatty(1) == 1 && getenv("NO_COLOR") == nil

    enum Style: String {
        case plan = "\u{1B}[1;36m", planText = "\u{1B}[36m", step = "\u{1B}[1m", answer = "\u{1B}[1;32m", dim = "\u{1B}[2m"
    }

    static func styled(_ text: String, _ style: Style) -> String {
        stdoutIsTerminal ? style.rawValue + text + "\u{1B}[0m" : text
    }

    /// All of standard input.
    static func readStandardInput() -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(0, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
