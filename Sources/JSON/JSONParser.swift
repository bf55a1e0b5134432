import CJansson
import CJanssonShim

/// Why a byte string is not a JSON document, with where jansson stopped reading.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// jansson's message, e.g. "'[' or '{' expected near 'x'" or "unexpected end of input".
    public let message: String
    /// 1-based line of the error (0 when jansson could not tell).
    public let line: Int
    /// 1-based column, counted in Unicode code points.
    public let column: Int
    /// Byte offset of the error from the start of the input.
    public let position: Int

    public var description: String { "\(message) (line \(line), column \(column), byte \(position))" }
}

extension JSONValue {
    /// Parses one complete JSON document (any top-level value) from UTF-8 bytes.
    ///
    /// Invalid UTF-8, lone surrogates, integers beyond 64 bits, trailing garbage, nesting past
    /// jansson's depth limit and (unless `allowDuplicateKeys`) repeated object keys are all errors.
    public static func parse(
        _ bytes: some Collection<UInt8>, allowDuplicateKeys: Bool = false
    ) throws(JSONParseError) -> JSONValue {
        let flags = cjansson_decode_flags(allowDuplicateKeys ? 0 : 1)
        var error = json_error_t()
        func load(_ buffer: UnsafeBufferPointer<UInt8>) -> UnsafeMutablePointer<json_t>? {
            // jansson rejects a NULL buffer even for length 0; an empty collection may have no storage.
            guard let base = buffer.baseAddress else { return json_loadb(" ", 0, flags, &error) }
            return base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                json_loadb($0, buffer.count, flags, &error)
            }
        }
        let loaded = bytes.withContiguousStorageIfAvailable(load) ?? Array(bytes).withUnsafeBufferPointer(load)
        guard let loaded else {
            let text = withUnsafeBytes(of: error.text) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            throw JSONParseError(message: text, line: Int(error.line), column: Int(error.column),
                                 position: Int(error.position))
        }
        let document = JanssonReference(owning: loaded)
        return withExtendedLifetime(document) { JSONValue(jansson: document.pointer) }
    }

    /// Parses a JSON document from a string.
    public static func parse(_ text: String, allowDuplicateKeys: Bool = false) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), allowDuplicateKeys: allowDuplicateKeys)
    }

    /// Converts a borrowed jansson value (and its children) into a Swift value.
    init(jansson value: UnsafeMutablePointer<json_t>) {
        switch cjansson_typeof(value) {
        case JSON_NULL: self = .null
        case JSON_TRUE: self = .bool(true)
        case JSON_FALSE: self = .bool(false)
        case JSON_INTEGER: self = .integer(Int64(json_integer_value(value)))
        case JSON_REAL: self = .double(json_real_value(value))
        case JSON_STRING:
            self = .string(Self.string(json_string_value(value), length: json_string_length(value)))
        case JSON_ARRAY:
            let count = json_array_size(value)
            var elements: [JSONValue] = []
            elements.reserveCapacity(count)
            for index in 0..<count {
                elements.append(JSONValue(jansson: json_array_get(value, index)))
            }
            self = .array(elements)
        case JSON_OBJECT:
            var object = JSONObject()
            object.reserveCapacity(json_object_size(value))
            var iterator = json_object_iter(value)
            while let current = iterator {
                let key = Self.string(json_object_iter_key(current), length: json_object_iter_key_len(current))
                object[key] = JSONValue(jansson: json_object_iter_value(current))
                iterator = json_object_iter_next(value, current)
            }
            self = .object(object)
        default:
            self = .null
        }
    }

    /// A Swift string from jansson's (validated UTF-8, possibly NUL-containing) bytes.
    private static func string(_ pointer: UnsafePointer<CChar>?, length: Int) -> String {
        guard let pointer else { return "" }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }
}
