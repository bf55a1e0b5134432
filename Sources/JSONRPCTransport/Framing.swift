#if canImport(Glibc)
    import Glibc
#endif
import Synchronization

/// How messages are delimited on the byte stream.
public enum Framing: String, Sendable, CaseIterable {
    /// Decide from the first non-blank byte: `{` or `[` means ndjson, anything else lsp.
    case auto
    /// LSP's `Content-Length: N\r\n\r\n` headers before each body (Neovim, Emacs, VS Code).
    case lsp
    /// One JSON message per line (shell scripts, MCP-style clients).
    case ndjson
}

/// What the reader produces: a message body, a framing problem (the stream stays usable), or the end.
public enum Frame: Equatable, Sendable {
    case message([UInt8])
    case error(FramingError)
    case end
}

/// A framing problem, reported to the client while the reader resynchronises.
public struct FramingError: Error, Equatable, Sendable {
    public enum Kind: Sendable { case tooLarge, badHeader, truncated }
    public var kind: Kind
    public var message: String
}

/// Splits a byte stream into message bodies. Only frames bytes: it knows nothing of JSON.
///
/// A message over `maxMessageBytes` is never buffered whole. ndjson: it is skipped as it streams past,
/// up to the next newline. lsp: a Content-Length over the limit is refused as soon as the header is
/// read (cap and resync), and the reader skips to the next `Content-Length:`, so a bogus huge length
/// cannot swallow the stream. After a malformed lsp header it also resynchronises at the next
/// `Content-Length:`; a header followed directly by another header reports the first and keeps the second.
public final class FrameReader {
    private let descriptor: Int32
    public let maxMessageBytes: Int
    public private(set) var framing: Framing
    private var buffer: [UInt8] = []
    private var position = 0
    private var atEnd = false
    /// After a malformed lsp header: skip to the next "Content-Length:" before reading on.
    private var needsResync = false
    private static let chunk = 1 << 16
    private static let maxHeaderBytes = 8192

    public init(descriptor: Int32, framing: Framing, maxMessageBytes: Int) {
        self.descriptor = descriptor
        self.framing = framing
        self.maxMessageBytes = maxMessageBytes
    }

    /// The next frame; blocks on the descriptor.
    public func next() -> Frame {
        if framing == .auto {
            guard let first = peekNonBlank() else { return .end }
            framing = (first == UInt8(ascii: "{") || first == UInt8(ascii: "[")) ? .ndjson : .lsp
        }
        return framing == .lsp ? nextLSP() : nextLine()
    }

    // MARK: Buffer

    private var available: Int { buffer.count - position }

    /// Reads more bytes; false at end of stream.
    @discardableResult
    private func fill() -> Bool {
        if atEnd { return false }
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        } else if position > Self.chunk * 4 {
            buffer.removeFirst(position)
            position = 0
        }
        var chunk = [UInt8](repeating: 0, count: Self.chunk)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return true
            }
            if count < 0 && errno == EINTR { continue }
            atEnd = true
            return false
        }
    }

    private func peekNonBlank() -> UInt8? {
        while true {
            while position < buffer.count {
                let byte = buffer[position]
                if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 } else { return byte }
            }
            if !fill() { return nil }
        }
    }

    private func index(of byte: UInt8, from start: Int) -> Int? {
        var index = start
        while index < buffer.count {
            if buffer[index] == byte { return index }
            index += 1
        }
        return nil
    }

    /// Discards `count` bytes as they arrive; false if the stream ended first.
    private func skip(_ count: Int) -> Bool {
        var remaining = count
        while remaining > 0 {
            if available == 0 && !fill() { return false }
            let take = min(remaining, available)
            position += take
            remaining -= take
        }
        return true
    }

    // MARK: ndjson

    private func nextLine() -> Frame {
        // How far past `position` has been scanned; relative, because `fill` may move the buffer.
        var scanned = 0
        while true {
            if let newline = index(of: 0x0A, from: position + scanned) {
                var line = Array(buffer[position..<newline])
                position = newline + 1
                if line.last == 0x0D { line.removeLast() }
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                    // A blank line: skip it (in a loop, not by recursion: a client may send millions).
                    scanned = 0
                    continue
                }
                if line.count > maxMessageBytes { return .error(tooLarge(line.count)) }
                return .message(line)
            }
            if available > maxMessageBytes {
                // Too long: drop it as it streams past, up to its newline.
                var dropped = available
                position = buffer.count
                while true {
                    guard fill() else { return .error(tooLarge(dropped)) }
                    if let newline = index(of: 0x0A, from: position) {
                        dropped += newline - position
                        position = newline + 1
                        return .error(tooLarge(dropped))
                    }
                    dropped += available
                    position = buffer.count
                }
            }
            scanned = available
            if !fill() {
                // The last line may lack its newline.
                let rest = Array(buffer[position...])
                position = buffer.count
                if rest.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }) { return .end }
                return .message(rest)
            }
        }
    }

    private func tooLarge(_ size: Int) -> FramingError {
        FramingError(kind: .tooLarge, message: "message of \(size) bytes exceeds the limit of \(maxMessageBytes) bytes; it was skipped")
    }

    // MARK: lsp

    private func nextLSP() -> Frame {
        if needsResync {
            needsResync = false
            skipToNextHeader()
        }
        guard peekNonBlank() != nil else { return .end }
        // Find the end of the header block (scanning relative to `position`: `fill` may move the buffer).
        var scanned = 0
        var headerEnd: (end: Int, next: Int)?
        while headerEnd == nil {
            var index = position + scanned
            while index < buffer.count {
                if buffer[index] == 0x0A {
                    if index + 1 < buffer.count, buffer[index + 1] == 0x0A { headerEnd = (index, index + 2); break }
                    if index + 2 < buffer.count, buffer[index + 1] == 0x0D, buffer[index + 2] == 0x0A {
                        headerEnd = (index, index + 3)
                        break
                    }
                }
                index += 1
            }
            if headerEnd != nil { break }
            if available > Self.maxHeaderBytes {
                return resync(after: position, FramingError(kind: .badHeader, message: "no end of header within \(Self.maxHeaderBytes) bytes"))
            }
            scanned = max(0, available - 2)
            if !fill() {
                position = buffer.count
                return .error(FramingError(kind: .truncated, message: "the stream ended inside a message header"))
            }
        }
        // `position` has stayed at the header's start while `fill` may have moved the buffer.
        let headerStart = position
        if headerEnd!.end - headerStart > Self.maxHeaderBytes {
            return resync(after: headerStart, FramingError(kind: .badHeader, message: "no end of header within \(Self.maxHeaderBytes) bytes"))
        }
        let header = String(decoding: buffer[position..<headerEnd!.end], as: UTF8.self)
        var length: Int?
        for line in header.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":"), colon > line.startIndex,
                  line[..<colon].utf8.allSatisfy(Self.isTokenByte)
            else {
                // Not a header: resynchronise from just past where this header block began, so a
                // Content-Length further on in the same block (a body sent without a header, then a
                // proper message) is still found.
                return resync(after: headerStart,
                              FramingError(kind: .badHeader, message: "malformed header line \"\(line.prefix(80))\" (expected Content-Length: N)"))
            }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters
            if name == "content-length" {
                guard let parsed = Int(value), parsed >= 0, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    // The block had a Content-Length line: skip the whole block, not just into it.
                    position = headerEnd!.next
                    return resync(FramingError(kind: .badHeader, message: "invalid Content-Length \"\(value.prefix(40))\""))
                }
                if let length, length != parsed {
                    position = headerEnd!.next
                    return resync(FramingError(kind: .badHeader, message: "conflicting Content-Length headers (\(length) and \(parsed))"))
                }
                length = parsed
            }
        }
        position = headerEnd!.next
        guard let length else {
            return resync(after: headerStart, FramingError(kind: .badHeader, message: "header without Content-Length"))
        }
        if length > maxMessageBytes {
            // Cap and resync: a length over the limit is refused at once, without waiting for (or
            // trusting) that many bytes; whatever body follows is dropped up to the next header.
            needsResync = true
            return .error(FramingError(kind: .tooLarge, message: "Content-Length \(length) exceeds the limit of \(maxMessageBytes) bytes; "
                                          + "the body is skipped up to the next Content-Length header"))
        }
        // A header followed directly by another header: the body never came. Refuse it and keep the
        // next header, rather than reading the next message as this one's body.
        let needle = Self.contentLengthNeedle
        if length >= needle.count {
            while available < needle.count {
                if !fill() { break }
            }
            if available >= needle.count, Self.matchesNeedle(buffer, at: position) {
                return .error(FramingError(kind: .badHeader, message: "a header of \(length) bytes was followed by another header instead of its body"))
            }
        }
        while available < length {
            if !fill() {
                let got = available
                position = buffer.count
                return .error(FramingError(kind: .truncated, message: "the stream ended after \(got) of \(length) body bytes"))
            }
        }
        let body = Array(buffer[position..<(position + length)])
        position += length
        return .message(body)
    }

    /// RFC 9110 token characters, the only ones allowed in a header name.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    private static let contentLengthNeedle = Array("content-length:".utf8)

    /// Whether "Content-Length:" (any case) starts at `index`; the caller ensures the bytes are there.
    private static func matchesNeedle(_ buffer: [UInt8], at index: Int) -> Bool {
        for (offset, byte) in contentLengthNeedle.enumerated() where buffer[index + offset] | 0x20 != byte | 0x20 {
            return false
        }
        return true
    }

    /// After a bad header block that began at `start`: report it now, and on the next read skip to the
    /// next "Content-Length:" after that point.
    private func resync(after start: Int, _ error: FramingError) -> Frame {
        position = start + 1
        return resync(error)
    }

    /// After a bad header: report it now, and skip to the next "Content-Length:" on the next read.
    private func resync(_ error: FramingError) -> Frame {
        needsResync = true
        return .error(error)
    }

    /// Drops bytes up to the next "Content-Length:" (case-insensitive), or to the end of the stream.
    private func skipToNextHeader() {
        let needle = Self.contentLengthNeedle
        while true {
            var index = position
            while index + needle.count <= buffer.count {
                if Self.matchesNeedle(buffer, at: index) {
                    position = index
                    return
                }
                index += 1
            }
            // Keep only a tail that could be the start of the needle.
            position = max(position, buffer.count - needle.count)
            if !fill() {
                position = buffer.count
                return
            }
        }
    }
}

/// Writes message bodies with the framing the client uses. Thread-safe: one message at a time.
public final class FrameWriter: Sendable {
    private let descriptor: Int32
    private let state: Mutex<(framing: Framing, broken: Bool)>

    public init(descriptor: Int32, framing: Framing) {
        self.descriptor = descriptor
        self.state = Mutex((framing, false))
    }

    /// Sets the framing once the reader has detected it.
    public func setFraming(_ framing: Framing) {
        state.withLock { $0.framing = framing }
    }

    /// Writes one message; false once the peer has gone (EPIPE and the like).
    @discardableResult
    public func write(_ body: [UInt8]) -> Bool {
        state.withLock { state in
            guard !state.broken else { return false }
            var bytes: [UInt8]
            if state.framing == .ndjson {
                bytes = body
                bytes.append(0x0A)
            } else {
                bytes = Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body
            }
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                if written < 0 {
                    if errno == EINTR { continue }
                    state.broken = true
                    return false
                }
                offset += written
            }
            return true
        }
    }
}

extension StringProtocol {
    fileprivate var trimmingCharacters: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
