// libFuzzer target over everything the daemon does with untrusted bytes before a request runs:
// framing (FrameReader, both framings), JSON parsing (jansson), JSON-RPC message decoding, and the
// params decoding of every method. Built and run by scripts/fuzz.sh with -sanitize=fuzzer,address.
//
// Input layout: byte 0 picks the framing (auto, lsp, ndjson) and a message-size limit; the rest is
// the byte stream a client would write to the daemon's stdin.
//
// Besides crashes and ASan reports, it checks invariants that a bug would break:
// - every parsed JSON value survives serialize → parse unchanged;
// - a frame is never larger than the limit; the reader always reaches the end of the stream;
// - a decoded message re-encodes to JSON that decodes to the same message.

import JSON
import JSONRPC
import JSONRPCTransport
import SelfAnchorProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// One unlinked temporary file reused for every input: FrameReader reads from a descriptor.
nonisolated(unsafe) private var memoryFile: Int32 = -1

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    if memoryFile < 0 {
        var template = Array("/tmp/selfanchor-fuzz-XXXXXX".utf8CString)
        memoryFile = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(memoryFile >= 0, "mkstemp failed")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }
    let selector = data[0]
    let framing: Framing = [.auto, .lsp, .ndjson][Int(selector % 3)]
    let limit = [1024, 4096, 1 << 20][Int(selector / 3 % 3)]
    let stream = UnsafeBufferPointer(start: data + 1, count: size - 1)
    precondition(ftruncate(memoryFile, 0) == 0)
    var offset = 0
    while offset < stream.count {
        let written = pwrite(memoryFile, stream.baseAddress! + offset, stream.count - offset, off_t(offset))
        precondition(written > 0, "pwrite failed")
        offset += written
    }
    precondition(lseek(memoryFile, 0, SEEK_SET) == 0)

    let reader = FrameReader(descriptor: memoryFile, framing: framing, maxMessageBytes: limit)
    var frames = 0
    loop: while true {
        frames += 1
        precondition(frames <= stream.count + 2, "the reader produced more frames than there are bytes")
        switch reader.next() {
        case .end: break loop
        case .error(let error): precondition(!error.message.isEmpty)
        case .message(let bytes):
            precondition(bytes.count <= limit, "a frame over the limit came through")
            handle(bytes)
        }
    }
    return 0
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
