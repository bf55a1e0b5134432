import DequeModule
import Dispatch
import JSON
import JSONRPC
import JSONRPCTransport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One client's JSON-RPC connection, whatever carries its bytes (stdio, a pipe in a test, memory).
///
/// Exists so that everything between bytes and messages happens in one place, the same for the daemon
/// and for in-process clients: framing detection, JSON parsing, JSON-RPC decoding, the error answers
/// for input that fails any of those (−32700, −32600, 1005), and an outbound queue with its own writer
/// thread. Senders never wait on the peer: a client that stops reading stalls only its own output,
/// not the decoding of every request in flight, until `maxQueuedBytes` are waiting (then senders wait,
/// so memory stays bounded).
public final class Connection: Sendable {
    /// Writes bytes to the peer, all of them; false once the peer is gone (EPIPE and the like).
    public typealias Sink = @Sendable ([UInt8]) -> Bool

    public let maxQueuedBytes: Int
    private let sink: Sink
    private let onBroken: @Sendable () -> Void
    private let input: Mutex<MessageFramer>
    /// Weak: the receiver's output usually holds this connection.
    private let receiver = Mutex(WeakReceiver())
    private let output: Mutex<Outbox>
    /// Signalled when messages are queued (wakes the writer) and after each write (wakes waiting senders).
    private let queued = DispatchSemaphore(value: 0)
    private let written = DispatchSemaphore(value: 0)

    private struct WeakReceiver {
        weak var value: (any MessageReceiver)?
    }

    private struct Outbox {
        /// The framing answers go out in: the client's, once its first byte has shown it (lsp before that).
        var framing: Framing
        var frames: Deque<[UInt8]> = []
        var bytes = 0
        /// A frame taken by the writer and not yet written.
        var writing = false
        var broken = false
        var writerStarted = false
        var sendersWaiting = 0
    }

    public init(
        framing: Framing, maxMessageBytes: Int, maxQueuedBytes: Int = 64 << 20, sink: @escaping Sink,
        onBroken: @escaping @Sendable () -> Void = {}
    ) {
        self.maxQueuedBytes = maxQueuedBytes
        self.sink = sink
        self.onBroken = onBroken
        input = Mutex(MessageFramer(framing: framing, maxMessageBytes: maxMessageBytes))
        output = Mutex(Outbox(framing: framing == .auto ? .lsp : framing))
    }

    /// Sets who gets the decoded messages and starts the writer. Call once, before feeding input.
    public func start(receiver: any MessageReceiver) {
        self.receiver.withLock { $0.value = receiver }
        let start = output.withLock { state in
            defer { state.writerStarted = true }
            return !state.writerStarted
        }
        // Its own queue: the writer blocks in write(2) for as long as the peer does not read. It holds the
        // connection only while writing, so a connection nobody holds ends its writer (see deinit).
        guard start else { return }
        let queued = self.queued
        DispatchQueue(label: "selfanchor.connection.writer").async { [weak self] in
            while true {
                queued.wait()
                guard let self, self.writeQueued() else { return }
            }
        }
    }

    deinit {
        queued.signal()
    }

    // MARK: Input

    /// Bytes the client sent, in order, from one thread. Complete messages go to the receiver before
    /// this returns; framing, JSON and JSON-RPC errors are answered through it.
    public func receive(_ bytes: some Collection<UInt8>) {
        let (frames, framing) = input.withLock { framer in (framer.feed(bytes), framer.framing) }
        if framing != .auto { output.withLock { $0.framing = framing } }
        frames.forEach(handle)
    }

    /// The client's input has ended; what its last bytes complete is handled.
    public func receiveEnd() {
        input.withLock { $0.finish() }.forEach(handle)
    }

    private func handle(_ frame: Frame) {
        guard let receiver = receiver.withLock({ $0.value }) else { return }
        switch frame {
        case .end:
            return
        case .error(let error):
            let code = error.kind == .tooLarge ? ErrorCode.messageTooLarge : ErrorCode.parseError
            receiver.receiveInvalid(ResponseError(code: code, message: error.message), id: nil)
        case .message(let bytes):
            let value: JSONValue
            do {
                value = try JSONValue.parse(bytes)
            } catch {
                receiver.receiveInvalid(
                    ResponseError(
                        code: ErrorCode.parseError, message: "parse error: \(error.description)",
                        data: [
                            "line": .int(error.line), "column": .int(error.column),
                            "position": .int(error.position),
                        ]), id: nil)
                return
            }
            switch Message.decode(value) {
            case .success(let message): receiver.receive(message)
            case .failure(let failure):
                receiver.receiveInvalid(
                    ResponseError(code: ErrorCode.invalidRequest, message: failure.message), id: failure.id)
            }
        }
    }

    // MARK: Output

    /// Queues a message for the client; returns at once unless `maxQueuedBytes` are already waiting.
    /// Messages from one thread go out in the order they were sent. Dropped once the peer is gone.
    public func send(_ message: Message) {
        let body = message.jsonValue.serializedBytes()
        while true {
            let admitted = output.withLock { state -> Bool? in
                if state.broken { return nil }
                // One message is always admitted when nothing waits, however large it is.
                guard state.bytes == 0 || state.bytes + body.count <= maxQueuedBytes else {
                    state.sendersWaiting += 1
                    return false
                }
                let frame =
                    state.framing == .ndjson
                    ? body + [0x0A] : Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body
                state.frames.append(frame)
                state.bytes += frame.count
                return true
            }
            switch admitted {
            case nil: return
            case true?:
                queued.signal()
                return
            case false?:
                _ = written.wait(timeout: .now() + .milliseconds(50))
                output.withLock { $0.sendersWaiting -= 1 }
            }
        }
    }

    /// Waits until everything queued has been written (or the peer is gone); false after `timeout`.
    @discardableResult
    public func flush(timeout: Duration = .seconds(5)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let done = output.withLock { $0.broken || ($0.frames.isEmpty && !$0.writing) }
            if done { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(1000)
        }
    }

    /// Bytes queued and not yet written.
    public var queuedBytes: Int { output.withLock { $0.bytes } }

    /// Writes what is queued; false once the peer is gone.
    private func writeQueued() -> Bool {
        while let frame = output.withLock({ state -> [UInt8]? in
            guard !state.broken, !state.frames.isEmpty else { return nil }
            state.writing = true
            return state.frames.removeFirst()
        }) {
            let ok = sink(frame)
            let waiting = output.withLock { state in
                state.writing = false
                state.bytes -= frame.count
                if !ok {
                    state.broken = true
                    state.frames.removeAll()
                    state.bytes = 0
                }
                return state.sendersWaiting
            }
            for _ in 0..<waiting { written.signal() }
            if !ok {
                onBroken()
                return false
            }
        }
        return true
    }
}

extension Connection {
    /// A sink that writes to a file descriptor, all bytes, retrying after EINTR.
    public static func descriptorSink(_ descriptor: Int32) -> Sink {
        { bytes in
            var offset = 0
            while offset < bytes.count {
                let count = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                if count < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += count
            }
            return true
        }
    }

    /// Reads the descriptor until its end, feeding every chunk to `receive`, then `receiveEnd`.
    public func run(reading descriptor: Int32) {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                receive(chunk[0..<count])
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        receiveEnd()
    }
}
