import JSON
import JSONRPC

/// Reads request params field by field, turning every mismatch into a -32602 error that names the
/// field (with its path, e.g. `params.options.omega`) and says what was expected.
public struct ParamsReader {
    public let object: JSONObject
    public let path: String

    /// `value` must be an object (or absent, meaning no fields).
    public init(_ value: JSONValue?, path: String = "params") throws(ResponseError) {
        switch value {
        case nil, .null?: object = [:]
        case .object(let object)?: self.object = object
        case let other?: throw Self.invalid(path, "an object", got: other)
        }
        self.path = path
    }

    static func invalid(_ field: String, _ expected: String, got value: JSONValue) -> ResponseError {
        ResponseError(code: ErrorCode.invalidParams, message: "\(field): expected \(expected), got \(value.typeName)",
                      data: ["field": .string(field)])
    }

    public static func invalid(_ field: String, _ message: String) -> ResponseError {
        ResponseError(code: ErrorCode.invalidParams, message: "\(field): \(message)", data: ["field": .string(field)])
    }

    func field(_ key: String) -> String { "\(path).\(key)" }

    /// JSON allows "\u0000" in strings, but llama.cpp reads prompts as C strings and would cut them
    /// there silently; refuse it instead.
    static func rejectNUL(_ text: String, _ field: String) throws(ResponseError) {
        if text.utf8.contains(0) { throw invalid(field, "must not contain NUL characters (\\u0000)") }
    }

    /// Fails on any member not in `known` (a misspelt option should not be ignored silently).
    public func rejectUnknown(_ known: Set<String>) throws(ResponseError) {
        for key in object.keys where !known.contains(key) {
            throw Self.invalid(field(key), "unknown field (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    public func string(_ key: String, required: Bool = false, nonEmpty: Bool = false) throws(ResponseError) -> String? {
        guard let value = object[key], value != .null else {
            if required { throw Self.invalid(field(key), "required (a string)") }
            return nil
        }
        guard case .string(let text) = value else { throw Self.invalid(field(key), "a string", got: value) }
        try Self.rejectNUL(text, field(key))
        if nonEmpty && text.allSatisfy({ " \n\t\r".contains($0) }) { throw Self.invalid(field(key), "must not be empty") }
        return text
    }

    public func integer(_ key: String, in range: ClosedRange<Int>) throws(ResponseError) -> Int? {
        guard let value = object[key], value != .null else { return nil }
        guard let number = value.integerValue else { throw Self.invalid(field(key), "an integer", got: value) }
        guard let int = Int(exactly: number), range.contains(int) else {
            throw Self.invalid(field(key), "must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return int
    }

    public func double(_ key: String, in range: ClosedRange<Double>) throws(ResponseError) -> Double? {
        guard let value = object[key], value != .null else { return nil }
        guard let number = value.doubleValue else { throw Self.invalid(field(key), "a number", got: value) }
        guard number.isFinite, range.contains(number) else {
            throw Self.invalid(field(key), "must be a finite number between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return number
    }

    public func bool(_ key: String) throws(ResponseError) -> Bool? {
        guard let value = object[key], value != .null else { return nil }
        guard case .bool(let flag) = value else { throw Self.invalid(field(key), "true or false", got: value) }
        return flag
    }

    public func strings(_ key: String) throws(ResponseError) -> [String]? {
        guard let value = object[key], value != .null else { return nil }
        guard case .array(let elements) = value else { throw Self.invalid(field(key), "an array of strings", got: value) }
        var result: [String] = []
        for (index, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                throw Self.invalid("\(field(key))[\(index)]", "a string", got: element)
            }
            try Self.rejectNUL(text, "\(field(key))[\(index)]")
            result.append(text)
        }
        return result
    }

    /// One of the raw values of an enum, with the allowed values in the error.
    public func choice<T: RawRepresentable & CaseIterable>(_ key: String, as type: T.Type) throws(ResponseError) -> T?
    where T.RawValue == String {
        guard let text = try string(key) else { return nil }
        guard let value = T(rawValue: text) else {
            throw Self.invalid(field(key), "must be one of \(T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(text)\"")
        }
        return value
    }

    public func nested(_ key: String) throws(ResponseError) -> ParamsReader {
        try ParamsReader(object[key], path: field(key))
    }

    public func array(_ key: String) throws(ResponseError) -> [JSONValue]? {
        guard let value = object[key], value != .null else { return nil }
        guard case .array(let elements) = value else { throw Self.invalid(field(key), "an array", got: value) }
        return elements
    }
}

