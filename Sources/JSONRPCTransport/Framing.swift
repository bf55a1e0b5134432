
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

/// Splits a byte stream into message bodies. Pure: it is fed bytes and yields frames; it does no I/O
/// and knows nothing of JSON, so tests and the fuzzer drive it directly, in any chunking.
///
/// A message over `maxMessageBytes` is never buffered whole. ndjson: it is skipped as it streams past,
/// up to the next newline. lsp: a Content-Length over the limit is refused as soon as the header is
/// read (cap and resync), and the framer skips to the next `Content-Length:`, so a bogus huge length
/// cannot swallow the stream. After a malformed lsp header it also resynchronises at the next
/// `Content-Length:`; a header followed directly by another header reports the first and keeps the second.
public struct MessageFramer: Sendable {
    public let maxMessageBytes: Int
    /// `auto` until the first non-blank byte has arrived.
    public private(set) var framing: Framing
    private var buffer: [UInt8] = []
    private var position = 0
    private var atEnd = false
    /// After a malformed lsp header: skip to the next "Content-Length:" before reading on.
    private var needsResync = false
    /// ndjson: while an oversized line streams past, how many of its bytes were dropped so far.
    private var droppingLine: Int?
    /// ndjson: how far past `position` has been searched for a newline (relative: compaction moves bytes).
    private var scanned = 0
    private static let maxHeaderBytes = 8192

    public init(framing: Framing, maxMessageBytes: Int) {
        self.framing = framing
        self.maxMessageBytes = maxMessageBytes
    }

    /// Adds bytes from the stream; returns the messages and framing errors they complete, in order.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> [Frame] {
        precondition(!atEnd, "fed after finish()")
        if position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        } else if position > 1 << 16 && position * 2 > buffer.count {
            buffer.removeFirst(position)
            position = 0
        }
        buffer.append(contentsOf: bytes)
        return drain()
    }

    /// The stream has ended: returns what the last bytes complete (a final line without its newline,
    /// a truncated message's error), then `.end`.
    public mutating func finish() -> [Frame] {
        if atEnd { return [.end] }
        atEnd = true
        return drain() + [.end]
    }

    private mutating func drain() -> [Frame] {
        var frames: [Frame] = []
        while let frame = nextFrame() { frames.append(frame) }
        return frames
    }

    /// The next complete frame, or nil when more bytes are needed (or, at the end, none are left).
    private mutating func nextFrame() -> Frame? {
        if framing == .auto {
            guard let first = peekNonBlank() else { return nil }
            framing = (first == UInt8(ascii: "{") || first == UInt8(ascii: "[")) ? .ndjson : .lsp
        }
        return framing == .lsp ? nextLSP() : nextLine()
    }

    // MARK: Buffer

    private var available: Int { buffer.count - position }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    private mutating func peekNonBlank() -> UInt8? {
        while position < buffer.count {
            let byte = buffer[position]
            if Self.isBlank(byte) { position += 1 } else { return byte }
        }
        return nil
    }

    private func index(of byte: UInt8, from start: Int, before end: Int? = nil) -> Int? {
        var index = start
        let end = min(end ?? buffer.count, buffer.count)
        while index < end {
            if buffer[index] == byte { return index }
            index += 1
        }
        return nil
    }

    // MARK: ndjson

    private mutating func nextLine() -> Frame? {
        while true {
            if let dropped = droppingLine {
                if let newline = index(of: 0x0A, from: position) {
                    droppingLine = nil
                    let total = dropped + newline - position
                    position = newline + 1
                    return .error(tooLarge(total))
                }
                droppingLine = dropped + available
                position = buffer.count
                guard atEnd else { return nil }
                droppingLine = nil
                return .error(tooLarge(dropped + available))
            }
            if let newline = index(of: 0x0A, from: position + scanned) {
                var line = Array(buffer[position..<newline])
                position = newline + 1
                scanned = 0
                if line.last == 0x0D { line.removeLast() }
                // A blank line: skip it (in a loop, not by recursion: a client may send millions).
                if line.allSatisfy(Self.isBlank) { continue }
                if line.count > maxMessageBytes { return .error(tooLarge(line.count)) }
                return .message(line)
            }
            // One byte of slack for the "\r" of a "\r\n" that has not fully arrived.
            if available - 1 > maxMessageBytes {
                // Too long: drop it as it streams past, up to its newline.
                droppingLine = available
                position = buffer.count
                scanned = 0
                continue
            }
            scanned = available
            guard atEnd else { return nil }
            // The last line may lack its newline.
            let rest = Array(buffer[position...])
            position = buffer.count
            scanned = 0
            if rest.allSatisfy(Self.isBlank) { return nil }
            if rest.count > maxMessageBytes { return .error(tooLarge(rest.count)) }
            return .message(rest)
        }
    }

    private func tooLarge(_ size: Int) -> FramingError {
        FramingError(kind: .tooLarge, message: "message of \(size) bytes exceeds the limit of \(maxMessageBytes) bytes; it was skipped")
    }

    // MARK: lsp

    private mutating func nextLSP() -> Frame? {
        if needsResync {
            guard skipToNextHeader() else { return nil }
            needsResync = false
        }
        guard peekNonBlank() != nil else { return nil }
        // The end of the header block: a blank line, searched for within the header size limit only.
        let headerStart = position
        var headerEnd: (end: Int, next: Int)?
        var index = headerStart
        let searchEnd = min(buffer.count, headerStart + Self.maxHeaderBytes + 3)
        while index < searchEnd {
            if buffer[index] == 0x0A {
                if index + 1 < buffer.count, buffer[index + 1] == 0x0A { headerEnd = (index, index + 2); break }
                if index + 2 < buffer.count, buffer[index + 1] == 0x0D, buffer[index + 2] == 0x0A {
                    headerEnd = (index, index + 3)
                    break
                }
            }
            index += 1
        }
        guard let headerEnd, headerEnd.end - headerStart <= Self.maxHeaderBytes else {
            if headerEnd != nil || available > Self.maxHeaderBytes + 2 {
                return resync(after: headerStart, FramingError(kind: .badHeader, message: "no end of header within \(Self.maxHeaderBytes) bytes"))
            }
            guard atEnd else { return nil }
            position = buffer.count
            return .error(FramingError(kind: .truncated, message: "the stream ended inside a message header"))
        }
        let header = String(decoding: buffer[headerStart..<headerEnd.end], as: UTF8.self)
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
                    position = headerEnd.next
                    return resync(FramingError(kind: .badHeader, message: "invalid Content-Length \"\(value.prefix(40))\""))
                }
                if let length, length != parsed {
                    position = headerEnd.next
                    return resync(FramingError(kind: .badHeader, message: "conflicting Content-Length headers (\(length) and \(parsed))"))
                }
                length = parsed
            }
        }
        let bodyStart = headerEnd.next
        guard let length else {
            return resync(after: headerStart, FramingError(kind: .badHeader, message: "header without Content-Length"))
        }
        if length > maxMessageBytes {
            // Cap and resync: a length over the limit is refused at once, without waiting for (or
            // trusting) that many bytes; whatever body follows is dropped up to the next header.
            position = bodyStart
            return resync(FramingError(kind: .tooLarge, message: "Content-Length \(length) exceeds the limit of \(maxMessageBytes) bytes; "
                                           + "the body is skipped up to the next Content-Length header"))
        }
        // A header followed directly by another header: the body never came. Refuse it and keep the
        // next header, rather than reading the next message as this one's body.
        let needle = Self.contentLengthNeedle
        let bodyAvailable = buffer.count - bodyStart
        if length >= needle.count {
            if bodyAvailable < needle.count && !atEnd { return nil }
            if bodyAvailable >= needle.count, Self.matchesNeedle(buffer, at: bodyStart) {
                position = bodyStart
                return .error(FramingError(kind: .badHeader, message: "a header of \(length) bytes was followed by another header instead of its body"))
            }
        }
        guard bodyAvailable >= length else {
            guard atEnd else { return nil }
            position = buffer.count
            return .error(FramingError(kind: .truncated, message: "the stream ended after \(bodyAvailable) of \(length) body bytes"))
        }
        position = bodyStart + length
        return .message(Array(buffer[bodyStart..<position]))
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

    /// After a bad header block that began at `start`: report it now, and then skip to the next
    /// "Content-Length:" after that point.
    private mutating func resync(after start: Int, _ error: FramingError) -> Frame {
        position = start + 1
        return resync(error)
    }

    /// After a bad header: report it now, and skip to the next "Content-Length:" before reading on.
    private mutating func resync(_ error: FramingError) -> Frame {
        needsResync = true
        return .error(error)
    }

    /// Drops bytes up to the next "Content-Length:" (case-insensitive); false while it has not arrived.
    /// At the end of the stream it drops everything and returns true.
    private mutating func skipToNextHeader() -> Bool {
        let needle = Self.contentLengthNeedle
        var index = position
        while index + needle.count <= buffer.count {
            if Self.matchesNeedle(buffer, at: index) {
                position = index
                return true
            }
            index += 1
        }
        if atEnd {
            position = buffer.count
            return true
        }
        // Keep only a tail that could be the start of the needle.
        position = max(position, buffer.count - needle.count)
        return false
    }
}

extension StringProtocol {
    fileprivate var trimmingCharacters: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
