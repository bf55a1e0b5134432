import Dispatch
import JSON
import JSONRPC
import JSONRPCConnection
import JSONRPCTransport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Collects what a connection hands over.
private final class Collector: MessageReceiver {
    let received = Mutex<[Message]>([])
    let invalid = Mutex<[(code: Int, id: RequestID?)]>([])

    func receive(_ message: Message) { received.withLock { $0.append(message) } }
    func receiveInvalid(_ error: ResponseError, id: RequestID?) { invalid.withLock { $0.append((error.code, id)) } }
}

/// A peer that stops reading until it is released, then records every frame.
private final class SlowPeer: Sendable {
    let release = DispatchSemaphore(value: 0)
    let released = Atomic<Bool>(false)
    let bytes = Mutex<[UInt8]>([])
    let writes = Atomic<Int>(0)

    func sink(_ frame: [UInt8]) -> Bool {
        if !released.load(ordering: .acquiring) {
            release.wait()
            released.store(true, ordering: .releasing)
        }
        bytes.withLock { $0 += frame }
        writes.add(1, ordering: .relaxed)
        return true
    }

    /// The ids of the notifications written, in order.
    func ids() -> [Int] {
        var framer = MessageFramer(framing: .ndjson, maxMessageBytes: 1 << 20)
        return (framer.feed(bytes.withLock { $0 }) + framer.finish()).compactMap { frame in
            guard case .message(let body) = frame, let value = try? JSONValue.parse(body) else { return nil }
            return value["params"]?["n"]?.integerValue.map(Int.init)
        }
    }
}

private func note(_ n: Int) -> Message { .notification(method: "note", params: ["n": .int(n)]) }

@Suite struct ConnectionTests {
    @Test func aPeerThatStopsReadingDoesNotStallSenders() {
        let peer = SlowPeer()
        let connection = Connection(framing: .ndjson, maxMessageBytes: 1 << 20, sink: peer.sink)
        let collector = Collector()
        connection.start(receiver: collector)
        // 2000 sends while the peer reads nothing: every one returns (queued), none is written yet.
        for n in 0..<2000 { connection.send(note(n)) }
        #expect(connection.queuedBytes > 0)
        #expect(peer.writes.load(ordering: .relaxed) <= 1)
        peer.release.signal()
        #expect(connection.flush(timeout: .seconds(30)))
        #expect(peer.ids() == Array(0..<2000))
        #expect(connection.queuedBytes == 0)
    }

    @Test func sendersWaitOnceTheQueueIsFull() {
        let peer = SlowPeer()
        let connection = Connection(framing: .ndjson, maxMessageBytes: 1 << 20, maxQueuedBytes: 4096, sink: peer.sink)
        connection.start(receiver: Collector())
        let sent = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            for n in 0..<1000 {
                connection.send(note(n))
                sent.add(1, ordering: .relaxed)
            }
            done.signal()
        }
        // The sender fills 4 KB (about 100 messages) and then waits for the peer.
        #expect(done.wait(timeout: .now() + 1) == .timedOut)
        #expect(sent.load(ordering: .relaxed) < 1000)
        #expect(connection.queuedBytes <= 4096 + 64)
        peer.release.signal()
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(connection.flush(timeout: .seconds(30)))
        #expect(peer.ids() == Array(0..<1000))
    }

    @Test func aBrokenPeerIsReportedOnceAndLaterSendsAreDropped() {
        let reports = Atomic<Int>(0)
        let attempts = Atomic<Int>(0)
        let connection = Connection(framing: .lsp, maxMessageBytes: 1 << 20, sink: { _ in
            attempts.add(1, ordering: .relaxed)
            return false
        }, onBroken: { reports.add(1, ordering: .relaxed) })
        connection.start(receiver: Collector())
        connection.send(note(1))
        #expect(connection.flush(timeout: .seconds(10)))
        for n in 2...50 { connection.send(note(n)) }
        #expect(connection.flush(timeout: .seconds(10)))
        #expect(reports.load(ordering: .relaxed) == 1)
        #expect(attempts.load(ordering: .relaxed) == 1)
        #expect(connection.queuedBytes == 0)
    }

    @Test func inputIsFramedDecodedAndItsErrorsAnswered() {
        let collector = Collector()
        let written = Mutex<[UInt8]>([])
        let connection = Connection(framing: .auto, maxMessageBytes: 64, sink: { bytes in
            written.withLock { $0 += bytes }
            return true
        })
        connection.start(receiver: collector)
        let input = #"{"jsonrpc":"2.0","id":1,"method":"a"}"# + "\n" + #"{"jsonrpc":"2.0","id":2,"#
        // Split mid-message: the second request completes with the next bytes.
        connection.receive(Array(input.utf8))
        #expect(collector.received.withLock { $0.count } == 1)
        connection.receive(Array((#""method":"b"}"# + "\n{oops}\n[1]\n" + #"{"jsonrpc":"2.0","id":7}"# + "\n").utf8))
        connection.receive(Array(repeating: UInt8(ascii: "x"), count: 200) + [0x0A])
        connection.receiveEnd()
        #expect(collector.received.withLock { $0 } == [.request(id: .integer(1), method: "a", params: nil),
                                                        .request(id: .integer(2), method: "b", params: nil)])
        let invalid = collector.invalid.withLock { $0 }
        #expect(invalid.map(\.code) == [ErrorCode.parseError, ErrorCode.invalidRequest, ErrorCode.invalidRequest,
                                        ErrorCode.messageTooLarge])
        #expect(invalid[2].id == .integer(7))
        // Answers go out in the framing the client used.
        connection.send(note(3))
        #expect(connection.flush())
        #expect(written.withLock { $0 } == Array(#"{"jsonrpc":"2.0","method":"note","params":{"n":3}}"#.utf8) + [0x0A])
    }

    /// The daemon's stdin: a pipe read to its end, messages split across reads, through the framer.
    @Test func runReadsADescriptorToItsEnd() {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let body = #"{"jsonrpc":"2.0","id":1,"method":"a"}"#
        let wire = Array("Content-Length: \(body.utf8.count)\r\n\r\n\(body)Content-Length: x\r\n\r\n".utf8)
        _ = wire.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        defer { close(fds[0]) }
        let collector = Collector()
        let connection = Connection(framing: .auto, maxMessageBytes: 1024, sink: { _ in true })
        connection.start(receiver: collector)
        connection.run(reading: fds[0])
        #expect(collector.received.withLock { $0 } == [.request(id: .integer(1), method: "a", params: nil)])
        #expect(collector.invalid.withLock { $0.map(\.code) } == [ErrorCode.parseError])
    }
}
