import Dispatch
import JSON
import JSONRPC
import JSONRPCConnection
import JSONRPCTransport
import Synchronization

/// A client of a `Server` in the same process: tests and embedders send messages and read what the
/// server answers, in order. No pipes, but the same `Connection` as the daemon's stdio: requests go in
/// as ndjson bytes and answers come out of its queue and writer as bytes, which this client frames and
/// decodes back, so what it sees is what a client on the pipe would see.
public final class InProcessClient: Sendable {
    public let server: Server
    public let connection: Connection
    private let mailbox = Mailbox()
    private let nextID = Mutex(1)

    /// What the server sent, shared with its output closure.
    private final class Mailbox: Sendable {
        let messages = Mutex<[Message]>([])
        let arrived = DispatchSemaphore(value: 0)
        let exitCode = Mutex<Int32?>(nil)
        /// Frames what the connection writes.
        let framer = Mutex(MessageFramer(framing: .ndjson, maxMessageBytes: Int.max))

        /// The bytes the connection wrote: every message in them, in order.
        func take(_ bytes: [UInt8]) -> Bool {
            for frame in framer.withLock({ $0.feed(bytes) }) {
                guard case .message(let body) = frame, let value = try? JSONValue.parse(body),
                      case .success(let message) = Message.decode(value)
                else { preconditionFailure("the connection wrote something that is not a JSON-RPC message: \(frame)") }
                messages.withLock { $0.append(message) }
                arrived.signal()
            }
            return true
        }
    }

    public init(options: ServerOptions) {
        let mailbox = self.mailbox
        let connection = Connection(framing: .ndjson, maxMessageBytes: options.maxMessageBytes, sink: mailbox.take)
        self.connection = connection
        server = Server(options: options, output: connection.send, exit: { code in
            mailbox.exitCode.withLock { $0 = code }
        })
        connection.start(receiver: server)
        server.start()
    }

    /// Sends raw bytes, as a client on the pipe would (ndjson).
    public func send(bytes: [UInt8]) {
        connection.receive(bytes)
    }

    private func send(_ message: Message) {
        connection.receive(message.jsonValue.serializedBytes() + [0x0A])
    }

    /// The code the server asked to exit with, once it did.
    public var requestedExit: Int32? { mailbox.exitCode.withLock { $0 } }

    /// Sends a request; returns its id.
    @discardableResult
    public func request(_ method: String, _ params: JSONValue? = nil) -> RequestID {
        let id = RequestID.integer(nextID.withLock { value in
            defer { value += 1 }
            return value
        })
        send(.request(id: id, method: method, params: params))
        return id
    }

    public func notify(_ method: String, _ params: JSONValue? = nil) {
        send(.notification(method: method, params: params))
    }

    /// The next message from the server, or nil after `timeout` seconds.
    public func next(timeout: Double = 60) -> Message? {
        guard mailbox.arrived.wait(timeout: .now() + timeout) == .success else { return nil }
        return mailbox.messages.withLock { $0.removeFirst() }
    }

    /// Reads until the response to `id` arrives; returns it with the notifications seen on the way.
    public func response(to id: RequestID, timeout: Double = 120) -> (Message?, [Message]) {
        var notifications: [Message] = []
        while let message = next(timeout: timeout) {
            switch message {
            case .response(let responseID, _) where responseID == id: return (message, notifications)
            case .errorResponse(let responseID, _) where responseID == id: return (message, notifications)
            default: notifications.append(message)
            }
        }
        return (nil, notifications)
    }
}
