import Testing
import JSON
import JSONRPC
import JSONRPCTransport
@testable import SelfAnchorServer

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct MessageDecodingTests {
    @Test func requestsNotificationsAndResponses() throws {
        let request = try JSONValue.parse(#"{"jsonrpc":"2.0","id":"a","method":"solve","params":{"question":"q"}}"#)
        #expect(try Message.decode(request).get() == .request(id: .string("a"), method: "solve", params: ["question": "q"]))
        let notification = try JSONValue.parse(#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3}}"#)
        #expect(try Message.decode(notification).get() == .notification(method: "$/cancelRequest", params: ["id": 3]))
        #expect(Message.response(id: .integer(7), result: .null).jsonValue.serialized() == #"{"jsonrpc":"2.0","id":7,"result":null}"#)
    }

    @Test(arguments: [
        #"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#, #"{"jsonrpc":"1.0","id":1,"method":"x"}"#, #""text""#,
        #"{"jsonrpc":"2.0","id":1,"method":7}"#, #"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
        #"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#, #"{"jsonrpc":"2.0","id":null,"method":"x"}"#, #"{"jsonrpc":"2.0"}"#,
    ])
    func invalidMessages(text: String) throws {
        guard case .failure(let failure) = Message.decode(try JSONValue.parse(text)) else {
            Issue.record("accepted: \(text)")
            return
        }
        #expect(!failure.message.isEmpty)
    }

    @Test func idsKeepTheirJSONType() {
        #expect(RequestID.string("7") != RequestID.integer(7))
        #expect(RequestID(.double(1.5)) == nil)
        #expect(RequestID(.null) == nil)
    }
}

@Suite struct FramingTests {
    /// Feeds the bytes to a MessageFramer whole; one byte at a time and in uneven chunks must give
    /// the same frames (framing cannot depend on how reads happen to split the stream).
    func frames(_ bytes: [UInt8], framing: Framing, limit: Int = 64) -> [Frame] {
        func run(_ chunks: [ArraySlice<UInt8>]) -> [Frame] {
            var framer = MessageFramer(framing: framing, maxMessageBytes: limit)
            var result: [Frame] = []
            for chunk in chunks { result += framer.feed(chunk) }
            return result + framer.finish()
        }
        let whole = run([bytes[...]])
        let bytewise = run(bytes.indices.map { bytes[$0...$0] })
        #expect(kinds(bytewise) == kinds(whole), "one byte at a time")
        var uneven: [ArraySlice<UInt8>] = []
        var start = 0
        var size = 1
        while start < bytes.count {
            uneven.append(bytes[start..<min(bytes.count, start + size)])
            start += size
            size = size % 7 + 3
        }
        #expect(kinds(run(uneven)) == kinds(whole), "uneven chunks")
        return whole
    }

    @Test func anOversizedNDJSONLineIsDroppedWithoutBufferingIt() {
        var framer = MessageFramer(framing: .ndjson, maxMessageBytes: 100)
        var result: [Frame] = []
        for _ in 0..<1000 { result += framer.feed(Array(repeating: UInt8(ascii: "x"), count: 1000)) }
        #expect(result.isEmpty)
        result += framer.feed(Array("\n{}\n".utf8))
        #expect(kinds(result) == ["tooLarge", "{}"])
        if case .error(let error) = result[0] { #expect(error.message.contains("1000000 bytes")) }
    }

    @Test func ndjsonLinesBlankLinesAndAFinalLineWithoutNewline() {
        let result = frames(Array("{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}".utf8), framing: .auto)
        #expect(result == [.message(Array("{\"a\":1}".utf8)), .message(Array("{\"b\":2}".utf8)), .message(Array("{\"c\":3}".utf8)), .end])
    }

    @Test func lspHeadersAndAutoDetection() {
        let body = Array("{\"x\":\"é\"}".utf8)
        let wire = Array("Content-Length: \(body.count)\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n".utf8) + body
        #expect(frames(wire + wire, framing: .auto) == [.message(body), .message(body), .end])
    }

    @Test func oversizedMessagesAreSkippedAndFramingStaysInStep() {
        let big = Array(repeating: UInt8(ascii: "x"), count: 500)
        let ndjson = frames(Array("{\"a\":1}\n".utf8) + big + Array("\n{\"b\":2}\n".utf8), framing: .ndjson)
        #expect(ndjson.count == 4)
        if case .error(let error) = ndjson[1] { #expect(error.kind == .tooLarge) } else { Issue.record("no error") }
        #expect(ndjson[2] == .message(Array("{\"b\":2}".utf8)))
        let lsp = frames(Array("Content-Length: 500\r\n\r\n".utf8) + big + Array("Content-Length: 2\r\n\r\n{}".utf8), framing: .lsp)
        if case .error(let error) = lsp[0] { #expect(error.kind == .tooLarge) } else { Issue.record("no error") }
        #expect(lsp[1] == .message(Array("{}".utf8)))
    }

    @Test func badLSPHeadersResynchroniseAtTheNextContentLength() {
        let wire = Array("Content-Length: nope\r\n\r\ngarbage{}Content-Length: 2\r\n\r\n{}".utf8)
        let result = frames(wire, framing: .lsp)
        if case .error(let error) = result[0] { #expect(error.kind == .badHeader) } else { Issue.record("no error") }
        #expect(result[1] == .message(Array("{}".utf8)))
        let truncated = frames(Array("Content-Length: 10\r\n\r\n{}".utf8), framing: .lsp)
        if case .error(let error) = truncated[0] { #expect(error.kind == .truncated) } else { Issue.record("no error") }
    }

    func kinds(_ frames: [Frame]) -> [String] {
        frames.map { frame in
            switch frame {
            case .message(let bytes): String(decoding: bytes, as: UTF8.self)
            case .error(let error): "\(error.kind)"
            case .end: "end"
            }
        }
    }

    @Test func hugeContentLengthIsRefusedAtOnceAndTheReaderResyncs() {
        // Cap and resync: no waiting for 10^12 bytes; the next header is found.
        let wire = Array("Content-Length: 1000000000000\r\n\r\n{\"partial\":Content-Length: 2\r\n\r\n{}".utf8)
        #expect(kinds(frames(wire, framing: .lsp)) == ["tooLarge", "{}", "end"])
    }

    @Test func headerWithoutBodyKeepsTheNextHeader() {
        let wire = Array("Content-Length: 40\r\n\r\nContent-Length: 2\r\n\r\n{}".utf8)
        #expect(kinds(frames(wire, framing: .lsp)) == ["badHeader", "{}", "end"])
    }

    @Test func bodyWithoutHeaderThenAFramedMessage() {
        for separator in ["", "\n", "\r\n\r\n"] {
            let wire = Array("{\"a\":1}\(separator)Content-Length: 2\r\n\r\n{}".utf8)
            #expect(kinds(frames(wire, framing: .lsp)) == ["badHeader", "{}", "end"], "separator \(separator.debugDescription)")
        }
    }

    @Test func conflictingOrNonDecimalLengthsSkipTheWholeBlock() {
        for header in ["Content-Length: 5\r\nContent-Length: 6", "Content-Length: +2", "Content-Length: 0x2", "Content-Length: 99999999999999999999999"] {
            let wire = Array("\(header)\r\n\r\nContent-Length: 2\r\n\r\n{}".utf8)
            #expect(kinds(frames(wire, framing: .lsp)) == ["badHeader", "{}", "end"], "\(header)")
        }
    }

    @Test func anOverlongHeaderIsReportedOnce() {
        let wire = Array("Content-Length: 2\r\nX-Junk: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 9000)
            + Array("\r\n\r\nContent-Length: 2\r\n\r\n{}".utf8)
        #expect(kinds(frames(wire, framing: .lsp, limit: 1024)) == ["badHeader", "{}", "end"])
    }
}

@Suite(.serialized) struct InProcessServerTests {
    static func client() -> InProcessClient {
        var options = ServerOptions()
        options.initialModel = "test"
        options.contextSize = 1024
        return InProcessClient(options: options)
    }

    @Test func lifecycleAndSolveOverTheInProcessClient() throws {
        let client = Self.client()
        let early = client.request("server/status")
        guard case .errorResponse(_, let error)? = client.response(to: early).0 else {
            Issue.record("no error before initialize")
            return
        }
        #expect(error.code == ErrorCode.serverNotInitialized)
        let initialize = client.request("initialize", ["processId": .null])
        guard case .response(_, let result)? = client.response(to: initialize).0 else {
            Issue.record("initialize failed")
            return
        }
        #expect(result["model"]?["name"] == "test")
        let solve = client.request("solve", ["question": "What is 2 + 2?", "strategy": "cot", "options": ["maxTokens": 12]])
        let (answer, notifications) = client.response(to: solve)
        guard case .response(_, let solved)? = answer else {
            Issue.record("solve failed: \(String(describing: answer))")
            return
        }
        #expect(solved["strategy"] == "cot")
        #expect(notifications.count >= 3)
        for notification in notifications {
            guard case .notification(let method, let params) = notification else { continue }
            #expect(method == "selfanchor/event")
            #expect(params?["id"] == solve.value)
        }
        let shutdown = client.request("shutdown")
        guard case .response(_, .null)? = client.response(to: shutdown).0 else {
            Issue.record("shutdown failed")
            return
        }
        client.notify("exit")
        #expect(client.requestedExit == 0)
    }
}
