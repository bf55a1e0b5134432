/// Turns a stream of byte pieces (token pieces) into valid UTF-8 text, holding back a trailing partial
/// character until the bytes that complete it arrive.
///
/// Tokenizers split multi-byte characters across tokens; emitting each piece as a string would
/// produce replacement characters in the middle of a streamed emoji or CJK character.
public struct UTF8StreamDecoder: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Bytes held back, waiting for the rest of a character.
    public var pendingByteCount: Int { pending.count }

    /// Appends bytes and returns the text that is now complete (possibly empty).
    public mutating func append(_ bytes: some Sequence<UInt8>) -> String {
        pending.append(contentsOf: bytes)
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Ends the stream: whatever is held back is decoded, an unfinished character as U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// The length of the longest prefix that does not end inside an unfinished multi-byte sequence.
    /// Invalid bytes are not held (they decode to U+FFFD right away); only a valid-looking lead byte
    /// near the end whose continuation bytes have not all arrived is.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let count = bytes.count
        // A character is at most 4 bytes: look at the last 3 bytes for a lead byte.
        var index = count - 1
        while index >= 0 && index >= count - 3 {
            let byte = bytes[index]
            if byte & 0xC0 == 0x80 {  // continuation byte: keep looking for its lead
                index -= 1
                continue
            }
            let needed: Int
            switch byte {
            case 0xC2...0xDF: needed = 2
            case 0xE0...0xEF: needed = 3
            case 0xF0...0xF4: needed = 4
            default: return count  // ASCII or invalid lead: nothing to wait for
            }
            return count - index < needed ? index : count
        }
        return count
    }
}
