import JSON
import JSONRPC
import SelfAnchorProtocol
import SelfAnchorServer
import Synchronization

/// The daemon as a Model Context Protocol server (`selfanchor serve --mcp`): coding agents and chat
/// applications call `solve` and `analyze` as MCP tools over the same stdio transport.
///
/// It exists so that MCP is a translation in front of the one dispatcher, not a second server: every
/// MCP message becomes a selfanchor message for `Server` (which queues, batches, cancels and loads
/// models as it always does), and every message `Server` sends back becomes its MCP form:
///
///   initialize (version negotiation)      → initialize, answered with MCP's result shape
///   tools/list                            answered here (schemas from Protocol/schema, `ToolSchemas`)
///   tools/call solve|analyze              → solve / analyze with the same id; the result comes back as
///                                           text content plus `structuredContent`; a failure as `isError`
///   _meta.progressToken                   → stream: each plan, step and answer as notifications/progress
///   notifications/cancelled               → $/cancelRequest (and no answer to the cancelled call)
///   ping                                  answered here
///
/// Unknown methods (including `server/discover`, which makes a newer client fall back to the
/// initialize handshake) are JSON-RPC errors -32601; an unknown tool is -32602, as MCP specifies.
public final class MCPBridge: MessageReceiver, Sendable {
    /// MCP revisions this server speaks, newest first (all of the initialize-handshake era).
    public static let protocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]

    private enum Pending {
        case initialize(version: String)
        case call(tool: String, progressToken: JSONValue?, progress: Int, cancelled: Bool)
    }

    private let output: @Sendable (Message) -> Void
    private let pending = Mutex<[RequestID: Pending]>([:])
    private let relay: Relay
    /// The dispatcher every call goes through.
    public let server: Server

    /// Forwards the server's messages to the bridge, which is made after the server.
    private final class Relay: Sendable {
        let bridge = Mutex<MCPBridge?>(nil)
    }

    public init(options: ServerOptions, output: @escaping @Sendable (Message) -> Void,
                exit: @escaping @Sendable (Int32) -> Void)
    {
        let relay = Relay()
        self.relay = relay
        self.output = output
        self.server = Server(options: options, output: { message in
            relay.bridge.withLock { $0 }?.fromServer(message)
        }, exit: exit)
        relay.bridge.withLock { $0 = self }
    }

    /// Breaks the server → bridge reference (the server's closure holds the relay).
    public func close() { relay.bridge.withLock { $0 = nil } }

    // MARK: From the client

    /// An MCP message from the client.
    public func receive(_ message: Message) {
        switch message {
        case .request(let id, let method, let params):
            request(id: id, method: method, params: params)
        case .notification(let method, let params):
            notification(method: method, params: params)
        case .response, .errorResponse:
            break  // this server sends the client no requests
        }
    }

    /// A message that could not be read: answered as JSON-RPC says.
    public func receiveInvalid(_ error: ResponseError, id: RequestID?) {
        output(.errorResponse(id: id, error: error))
    }

    private func request(id: RequestID, method: String, params: JSONValue?) {
        switch method {
        case "initialize":
            let requested = params?["protocolVersion"]?.stringValue
            let version = requested.flatMap { Self.protocolVersions.contains($0) ? $0 : nil } ?? Self.protocolVersions[0]
            pending.withLock { $0[id] = .initialize(version: version) }
            var inner: JSONObject = ["processId": .null]
            if let client = params?["clientInfo"], client.objectValue != nil { inner["clientInfo"] = client }
            server.receive(.request(id: id, method: "initialize", params: .object(inner)))
        case "ping":
            output(.response(id: id, result: [:]))
        case "tools/list":
            output(.response(id: id, result: ["tools": .array(ToolSchemas.tools)]))
        case "tools/call":
            call(id: id, params: params)
        default:
            output(.errorResponse(id: id, error: ResponseError(code: ErrorCode.methodNotFound, message: "method not found: \(method)")))
        }
    }

    private func call(id: RequestID, params: JSONValue?) {
        guard let name = params?["name"]?.stringValue else {
            return output(.errorResponse(id: id, error: ResponseError(code: ErrorCode.invalidParams,
                                                                      message: "params.name: required (the tool to call)")))
        }
        guard ToolSchemas.names.contains(name) else {
            return output(.errorResponse(id: id, error: ResponseError(
                code: ErrorCode.invalidParams,
                message: "unknown tool: \(name) (tools: \(ToolSchemas.names.joined(separator: ", ")))")))
        }
        var arguments: JSONObject = [:]
        switch params?["arguments"] {
        case nil, .null?: break
        case .object(let object)?: arguments = object
        case let other?:
            return output(.response(id: id, result: Self.failure("arguments: expected an object, got \(other.typeName)")))
        }
        let token = params?["_meta"]?["progressToken"]
        let progressToken = token.flatMap { $0 == .null ? nil : $0 }
        if name == "solve" { arguments["stream"] = .bool(progressToken != nil) }
        pending.withLock { $0[id] = .call(tool: name, progressToken: progressToken, progress: 0, cancelled: false) }
        server.receive(.request(id: id, method: name, params: .object(arguments)))
    }

    private func notification(method: String, params: JSONValue?) {
        switch method {
        case "notifications/initialized":
            server.receive(.notification(method: "initialized", params: nil))
        case "notifications/cancelled":
            guard let raw = params?["requestId"], let id = RequestID(raw) else { return }
            let known = pending.withLock { pending -> Bool in
                guard case .call(let tool, let token, let progress, _) = pending[id] else { return false }
                pending[id] = .call(tool: tool, progressToken: token, progress: progress, cancelled: true)
                return true
            }
            if known { server.receive(.notification(method: "$/cancelRequest", params: ["id": raw])) }
        default:
            break  // notifications this server has no use for are ignored, as JSON-RPC allows
        }
    }

    // MARK: From the server

    private func fromServer(_ message: Message) {
        switch message {
        case .response(let id, let result):
            switch pending.withLock({ $0.removeValue(forKey: id) }) {
            case .initialize(let version)?:
                output(.response(id: id, result: Self.initializeResult(version: version, selfanchor: result)))
            case .call(let tool, _, _, _)?:
                output(.response(id: id, result: Self.success(tool: tool, result: result)))
            case nil:
                break
            }
        case .errorResponse(let id, let error):
            guard let id else { return output(message) }
            switch pending.withLock({ $0.removeValue(forKey: id) }) {
            case .initialize?, nil:
                output(message)
            case .call(_, _, _, let cancelled)?:
                // A call the client cancelled gets no answer (MCP); any other failure is the tool's.
                if cancelled && error.code == ErrorCode.requestCancelled { return }
                output(.response(id: id, result: Self.failure(error.message)))
            }
        case .notification(let method, let params):
            guard method == Method.event, let raw = params?["id"], let id = RequestID(raw), let event = params?["event"],
                  let line = Self.progressLine(event)
            else { return }
            let progress = pending.withLock { pending -> (JSONValue, Int)? in
                guard case .call(let tool, let token?, let count, let cancelled) = pending[id], !cancelled else { return nil }
                pending[id] = .call(tool: tool, progressToken: token, progress: count + 1, cancelled: cancelled)
                return (token, count + 1)
            }
            guard let (token, count) = progress else { return }
            output(.notification(method: "notifications/progress",
                                 params: ["progressToken": token, "progress": .int(count), "message": .string(line)]))
        case .request:
            break
        }
    }

    // MARK: Shapes

    static func initializeResult(version: String, selfanchor: JSONValue) -> JSONValue {
        let server = selfanchor["serverInfo"] ?? ["name": "selfanchor"]
        var instructions = "Stepwise solutions from a local model with the Self-Anchor decoder: call solve with a question "
            + "(strategy self-anchor by default; task number, choice, yesno, math or text). analyze reads attention over a text."
        if let model = selfanchor["model"]?["description"]?.stringValue, let name = selfanchor["model"]?["name"]?.stringValue {
            instructions += " Model: \(name) (\(model))."
        } else {
            instructions += " No model is loaded."
        }
        return [
            "protocolVersion": .string(version),
            "capabilities": ["tools": ["listChanged": false]],
            "serverInfo": server,
            "instructions": .string(instructions),
        ]
    }

    /// A plan, step or answer event as one line of progress.
    static func progressLine(_ event: JSONValue) -> String? {
        guard let kind = event["event"]?.stringValue else { return nil }
        switch kind {
        case "plan", "reason":
            guard let index = event["index"]?.integerValue, let text = event["text"]?.stringValue else { return nil }
            return "\(kind == "plan" ? "Plan" : "Step") \(index): \(text)"
        case "answer":
            guard let text = event["extracted"]?.stringValue ?? event["text"]?.stringValue else { return nil }
            return "Answer: \(text)"
        default:
            return nil
        }
    }

    static func success(tool: String, result: JSONValue) -> JSONValue {
        ["content": [["type": "text", "text": .string(readable(tool: tool, result: result))]],
         "structuredContent": result, "isError": false]
    }

    /// A failed call, as the tool's result. The daemon names fields `params.…`; here they are the tool's
    /// `arguments.…`.
    static func failure(_ message: String) -> JSONValue {
        let text = message.hasPrefix("params.") ? "arguments." + message.dropFirst("params.".count) : message
        return ["content": [["type": "text", "text": .string(text)]], "isError": true]
    }

    /// What a person (or a model reading tool output) sees: the solution with its answer, or a summary
    /// of an analysis.
    static func readable(tool: String, result: JSONValue) -> String {
        if tool == "solve" {
            var text = (result["text"]?.stringValue ?? "").trimmingSpaces
            if let extracted = result["answer"]?["extracted"]?.stringValue { text += "\n\nExtracted answer: \(extracted)" }
            return text
        }
        let tokens = result["tokens"]?.arrayValue ?? []
        let anchors = tokens.filter { $0["anchor"]?.boolValue == true }.compactMap { $0["text"]?.stringValue }
        let preplans = tokens.filter { $0["preplan"]?.boolValue == true }.count
        var text = "\(tokens.count) response tokens analysed: \(anchors.count) anchor tokens, \(preplans) preplan tokens."
        if !anchors.isEmpty {
            text += " Anchors: " + anchors.prefix(20).map { $0.trimmingSpaces }.filter { !$0.isEmpty }.joined(separator: " · ")
        }
        return text
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
