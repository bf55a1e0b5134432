import Dispatch
import JSON
import JSONRPC
import Synchronization

/// A client wired straight to a `Server` in the same process, with no pipes or framing: tests and
/// embedders send messages and read what the server answers, in order.
public final class InProcessClient: Sendable {
    public let server: Server
    private let mailbox = Mailbox()
    private let nextID = Mutex(1)

    /// What the server sent, shared with its output closure.
    private final class Mailbox: Sendable {
        let messages = Mutex<[Message]>([])
        let arrived = DispatchSemaphore(value: 0)
        let exitCode = Mutex<Int32?>(nil)
    }

    public init(options: ServerOptions) {
        let mailbox = self.mailbox
        server = Server(options: options, output: { message in
            mailbox.messages.withLock { $0.append(message) }
            mailbox.arrived.signal()
        }, exit: { code in
            mailbox.exitCode.withLock { $0 = code }
        })
        server.start()
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
        server.receive(.request(id: id, method: method, params: params))
        return id
    }

    public func notify(_ method: String, _ params: JSONValue? = nil) {
        server.receive(.notification(method: method, params: params))
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
