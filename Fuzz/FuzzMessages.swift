// libFuzzer target over everything the daemon does with untrusted bytes before a request runs:
// framing (MessageFramer, both framings, fed whole and in uneven chunks), JSON parsing (jansson), JSON-RPC message decoding, and the
// params decoding of every method. Built and run by scripts/fuzz.sh with -sanitize=fuzzer,address.
//
// Input layout: byte 0 picks the framing (auto, lsp, ndjson) and a message-size limit; the rest is
// the byte stream a client would write to the daemon's stdin.
//
// Besides crashes and ASan reports, it checks invariants that a bug would break:
// - every parsed JSON value survives serialize → parse unchanged;
// - a frame is never larger than the limit; the framer ends exactly once;
// - feeding the stream in uneven chunks gives the same frames as feeding it whole;
// - a decoded message re-encodes to JSON that decodes to the same message.

import JSON
import JSONRPC
import JSONRPCTransport
import SelfAnchorProtocol

#if canImport(Glibc)
    import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let selector = data[0]
    let framing: Framing = [.auto, .lsp, .ndjson][Int(selector % 3)]
    let limit = [1024, 4096, 1 << 20][Int(selector / 3 % 3)]
    let stream = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))

    var whole = MessageFramer(framing: framing, maxMessageBytes: limit)
    let frames = whole.feed(stream) + whole.finish()
    precondition(frames.count <= stream.count + 1, "the framer produced more frames than there are bytes")
    precondition(frames.last == .end && frames.dropLast().allSatisfy { $0 != .end }, "one end, at the end")
    // The same stream in uneven chunks (sizes from the selector) must give the same frames.
    var chunked = MessageFramer(framing: framing, maxMessageBytes: limit)
    var again: [Frame] = []
    var start = 0
    var step = Int(selector % 13) + 1
    while start < stream.count {
        again += chunked.feed(stream[start..<min(stream.count, start + step)])
        start += step
        step = step * 5 % 17 + 1
    }
    again += chunked.finish()
    precondition(shape(again) == shape(frames), "framing depends on how the stream was split")
    for frame in frames {
        switch frame {
        case .end: break
        case .error(let error): precondition(!error.message.isEmpty)
        case .message(let bytes):
            precondition(bytes.count <= limit, "a frame over the limit came through")
            handle(bytes)
        }
    }
    return 0
}

/// Frames with their bodies, errors by kind only (their messages may count bytes differently).
private func shape(_ frames: [Frame]) -> [String] {
    frames.map { frame in
        switch frame {
        case .message(let bytes): "m" + String(decoding: bytes, as: UTF8.self)
        case .error(let error): "e\(error.kind)"
        case .end: "end"
        }
    }
}

private func handle(_ bytes: [UInt8]) {
    let value: JSONValue
    do { value = try JSONValue.parse(bytes) } catch { return }
    // Round trip: what the daemon writes must read back as the same value.
    let text = value.serializedBytes()
    guard let again = try? JSONValue.parse(text) else { preconditionFailure("serialized JSON does not parse: \(value)") }
    precondition(again == value, "JSON round trip changed the value")

    switch Message.decode(value) {
    case .failure(let failure):
        precondition(!failure.message.isEmpty)
    case .success(let message):
        switch Message.decode(message.jsonValue) {
        case .success(let decoded): precondition(decoded == message, "message round trip changed it")
        case .failure(let failure): preconditionFailure("a decoded message does not decode again: \(failure.message)")
        }
        let (method, params): (String, JSONValue?)
        switch message {
        case .request(_, let name, let p), .notification(let name, let p): (method, params) = (name, p)
        default: return
        }
        decodeParams(method, params)
    }
}

private func decodeParams(_ method: String, _ params: JSONValue?) {
    let limits = RequestLimits()
    func check(_ body: () throws(ResponseError) -> Void) {
        do throws(ResponseError) { try body() } catch {
            precondition(error.code == ErrorCode.invalidParams, "params decoding failed with \(error.code)")
            precondition(error.message.hasPrefix("params"), "an invalid-params message that names no field: \(error.message)")
        }
    }
    switch method {
    case Method.solve: check { () throws(ResponseError) in _ = try SolveParams(params, limits: limits) }
    case Method.generate: check { () throws(ResponseError) in _ = try GenerateParams(params, limits: limits) }
    case Method.modelLoad: check { () throws(ResponseError) in _ = try ModelLoadParams(params) }
    case Method.cancelRequest: check { () throws(ResponseError) in _ = try CancelParams(params) }
    case Method.analyze: check { () throws(ResponseError) in _ = try AnalyzeParams(params) }
    default: check { () throws(ResponseError) in _ = try ParamsReader(params) }
    }
    // Whatever the method, every decoder must cope with whatever params.
    check { () throws(ResponseError) in _ = try SolveParams(params, limits: limits) }
    check { () throws(ResponseError) in _ = try GenerateParams(params, limits: limits) }
    check { () throws(ResponseError) in _ = try ModelLoadParams(params) }
    check { () throws(ResponseError) in _ = try CancelParams(params) }
    check { () throws(ResponseError) in _ = try AnalyzeParams(params) }
}
