import CJansson
import CJanssonShim

extension JSONValue {
    /// The value as compact one-line UTF-8 JSON (no newline inside, none at the end).
    ///
    /// Reals are written with the fewest of 15, 16 or 17 significant digits that read back exactly,
    /// so `0.7` stays `0.7`; non-finite doubles become `null`.
    public func serialized() -> String {
        let document = makeJansson()
        let flags = cjansson_compact_flags(Int32(realPrecision()))
        return withExtendedLifetime(document) {
            guard let text = json_dumps(document.pointer, flags) else { return "null" }
            defer { cjansson_free(text) }
            return String(cString: text)
        }
    }

    /// `serialized()` as bytes.
    public func serializedBytes() -> [UInt8] { Array(serialized().utf8) }

    /// A new jansson tree holding this value.
    func makeJansson() -> JanssonReference {
        JanssonReference(owning: newJansson())
    }

    /// Builds a new reference; the caller owns it.
    private func newJansson() -> UnsafeMutablePointer<json_t> {
        switch self {
        case .null: return json_null()
        case .bool(let value): return value ? json_true() : json_false()
        case .integer(let value): return json_integer(json_int_t(value))
        case .double(let value): return value.isFinite ? json_real(value) : json_null()
        case .string(let value):
            return Self.withCString(value) { json_stringn_nocheck($0, $1) }
        case .array(let elements):
            let array = json_array()!
            for element in elements {
                json_array_append_new(array, element.newJansson())
            }
            return array
        case .object(let object):
            let result = json_object()!
            for (key, member) in object {
                _ = Self.withCString(key) { json_object_setn_new_nocheck(result, $0, $1, member.newJansson()) }
            }
            return result
        }
    }

    /// Calls `body` with the string's UTF-8 bytes (which may contain NUL) and their count.
    private static func withCString<R>(_ string: String, _ body: (UnsafePointer<CChar>, Int) -> R) -> R {
        var copy = string
        return copy.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { chars in
                guard let base = chars.baseAddress else { return body("", 0) }
                return body(base, chars.count)
            }
        }
    }

    /// The smallest precision (15…17) at which every real in the tree round-trips.
    private func realPrecision() -> Int {
        var precision = 15
        func visit(_ value: JSONValue) {
            switch value {
            case .double(let number) where number.isFinite:
                while precision < 17 && cjansson_real_roundtrips(number, Int32(precision)) == 0 { precision += 1 }
            case .array(let elements): elements.forEach(visit)
            case .object(let object): object.values.forEach(visit)
            default: break
            }
        }
        visit(self)
        return precision
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { serialized() }
}
