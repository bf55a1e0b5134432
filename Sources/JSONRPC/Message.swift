import JSON

/// A JSON-RPC request id. Kept as the JSON value the client sent (number or string), so that it is
/// echoed with its original type.
public struct RequestID: Hashable, Sendable, CustomStringConvertible {
    public let value: JSONValue

    /// An id from a message; nil for anything but a string or an integer (or null, which marks a
    /// request whose id could not be read).
    public init?(_ value: JSONValue) {
        switch value {
        case .string, .integer: self.value = value
        default: return nil
        }
    }

    public static func integer(_ value: Int) -> RequestID { RequestID(.int(value))! }
    public static func string(_ value: String) -> RequestID { RequestID(.string(value))! }

    public var description: String { value.serialized() }
}

/// A JSON-RPC 2.0 error object.
public struct ResponseError: Error, Sendable, Equatable {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var jsonValue: JSONValue {
        var object: JSONObject = ["code": .int(code), "message": .string(message)]
        if let data { object["data"] = data }
        return .object(object)
    }
}

/// The error codes: JSON-RPC's, LSP's, and selfanchor's own (positive, outside the reserved ranges).
public enum ErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// LSP: a request other than `initialize` arrived first.
    public static let serverNotInitialized = -32002
    /// LSP: the request was cancelled with `$/cancelRequest`.
    public static let requestCancelled = -32800

    public static let modelNotLoaded = 1001
    public static let modelLoadFailed = 1002
    public static let promptTooLong = 1003
    public static let queueFull = 1004
    public static let messageTooLarge = 1005
}

/// One JSON-RPC message, as read or to be written. No I/O here.
public enum Message: Sendable, Equatable {
    case request(id: RequestID, method: String, params: JSONValue?)
    case notification(method: String, params: JSONValue?)
    case response(id: RequestID, result: JSONValue)
    /// An error response; `id` is nil when the request's id could not be determined.
    case errorResponse(id: RequestID?, error: ResponseError)

    public var jsonValue: JSONValue {
        var object: JSONObject = ["jsonrpc": "2.0"]
        switch self {
        case .request(let id, let method, let params):
            object["id"] = id.value
            object["method"] = .string(method)
            if let params { object["params"] = params }
        case .notification(let method, let params):
            object["method"] = .string(method)
            if let params { object["params"] = params }
        case .response(let id, let result):
            object["id"] = id.value
            object["result"] = result
        case .errorResponse(let id, let error):
            object["id"] = id?.value ?? .null
            object["error"] = error.jsonValue
        }
        return .object(object)
    }

    /// Reads a message from a parsed JSON value, or says which JSON-RPC rule it breaks. The error
    /// carries the request id when one could be read, so the answer can name it.
    public static func decode(_ value: JSONValue) -> Result<Message, DecodingFailure> {
        guard case .object(let object) = value else {
            if case .array = value {
                return .failure(DecodingFailure(id: nil, message: "batch requests are not supported; send one message at a time"))
            }
            return .failure(DecodingFailure(id: nil, message: "a message must be a JSON object, not \(value.typeName)"))
        }
        let rawID = object["id"]
        let id = rawID.flatMap(RequestID.init)
        if let rawID, id == nil, rawID != .null {
            return .failure(DecodingFailure(id: nil, message: "\"id\" must be a string or an integer, not \(rawID.typeName)"))
        }
        guard object["jsonrpc"] == "2.0" else {
            return .failure(DecodingFailure(id: id, message: "\"jsonrpc\" must be \"2.0\""))
        }
        if let method = object["method"] {
            guard case .string(let name) = method else {
                return .failure(DecodingFailure(id: id, message: "\"method\" must be a string"))
            }
            // "params": null is read as no params (some clients send it); other scalars are errors.
            let params = object["params"] == .null ? nil : object["params"]
            if let params, params.objectValue == nil, params.arrayValue == nil {
                return .failure(DecodingFailure(id: id, message: "\"params\" must be an object or an array, not \(params.typeName)"))
            }
            if let id { return .success(.request(id: id, method: name, params: params)) }
            if rawID == .null {
                return .failure(DecodingFailure(id: nil, message: "a request's \"id\" must not be null"))
            }
            return .success(.notification(method: name, params: params))
        }
        guard let id else { return .failure(DecodingFailure(id: nil, message: "a message needs a \"method\" or an \"id\"")) }
        if let error = object["error"] {
            guard let code = error["code"]?.integerValue, let message = error["message"]?.stringValue else {
                return .failure(DecodingFailure(id: id, message: "\"error\" needs an integer \"code\" and a string \"message\""))
            }
            return .success(.errorResponse(id: id, error: ResponseError(code: Int(code), message: message, data: error["data"])))
        }
        guard let result = object["result"] else {
            return .failure(DecodingFailure(id: id, message: "a response needs \"result\" or \"error\""))
        }
        return .success(.response(id: id, result: result))
    }
}

/// Whatever takes the messages a connection reads: the daemon's dispatcher, or a protocol adapter in
/// front of it (MCP). The connection hands it each decoded message, or the error for one it could not read.
public protocol MessageReceiver: AnyObject, Sendable {
    func receive(_ message: Message)
    func receiveInvalid(_ error: ResponseError, id: RequestID?)
}

/// Why a JSON value is not a JSON-RPC message (answered with -32600).
public struct DecodingFailure: Error, Sendable, Equatable {
    public var id: RequestID?
    public var message: String
}
