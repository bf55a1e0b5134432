import ArgumentParser
import JSON
import JSONRPC
import JSONRPCConnection
import JSONRPCTransport
import Logging
import SelfAnchorMCP
import SelfAnchorServer

#if canImport(Glibc)
    import Glibc
#endif

extension Framing: ExpressibleByArgument {}

/// glibc's `mallopt` (malloc.h, which Glibc's module map leaves out).
@_silgen_name("mallopt") private func mallopt(_ parameter: Int32, _ value: Int32) -> Int32

/// `selfanchor serve`: the JSON-RPC daemon on stdin/stdout (Protocol/README.md).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Keep a model resident and answer JSON-RPC 2.0 requests on stdin/stdout.",
        discussion: "stdout carries protocol messages only; logs go to stderr. See Protocol/README.md.")

    @Option(name: .long, help: "auto (from the first byte), lsp (Content-Length headers) or ndjson (one message per line).")
    var framing: Framing = .auto

    @Option(name: .long, help: "Log level on stderr: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    @Option(name: .long, help: "Largest accepted message in bytes.")
    var maxMessageBytes: Int = 16 << 20

    @Option(name: .long, help: "Most requests waiting for a free slot.")
    var maxQueue: Int = 16

    @Option(name: .long, help: "Solves and generations decoding at once, batched together (each gets its own --context-size window).")
    var parallel: Int = 4

    @Option(name: .long, help: "Largest options.maxTokens a request may ask for.")
    var maxTokensLimit: Int = 8192

    @Option(name: .long, help: "Largest options.maxSteps a request may ask for.")
    var maxStepsLimit: Int = 64

    @Flag(name: .long, help: "Speak the Model Context Protocol (tools solve and analyze, newline-delimited JSON on stdio) instead of the selfanchor protocol.")
    var mcp = false

    @Flag(name: .long, help: "Start without a model (load one with model/load).")
    var noModel = false

    @Flag(name: .long, help: "Memory-map model files instead of reading them (faster load, shared page cache; but a model file truncated while loaded crashes the daemon with SIGBUS).")
    var mmap = false

    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard maxMessageBytes >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be ≥ 0") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 64") }
        guard maxTokensLimit >= 1 else { throw ValidationError("--max-tokens-limit must be at least 1") }
        guard maxStepsLimit >= 1 else { throw ValidationError("--max-steps-limit must be at least 1") }
    }

    func run() throws {
        // stdout is the protocol stream: keep a private copy of it and point fd 1 at stderr, so that
        // nothing else printed by this process (or llama.cpp) can corrupt the stream.
        signal(SIGPIPE, SIG_IGN)
        // A long-lived process whose requests each allocate a few vocabulary-sized arrays (600 KB for the
        // default model) on several threads: a fixed mmap threshold hands those back to the system when
        // freed, instead of glibc raising the threshold and keeping them in per-thread heaps.
        let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD (malloc.h; a macro Swift does not import)
        _ = mallopt(mmapThreshold, 256 << 10)
        let protocolDescriptor = dup(1)
        dup2(2, 1)
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        LlamaBackend.initialise(logLevel: LlamaBackend.LogLevel.allCases.first { "\($0)" == modelOptions.llamaLog })

        var options = ServerOptions()
        options.initialModel = noModel ? nil : modelOptions.model
        options.contextSize = modelOptions.contextSize
        options.threads = modelOptions.threads
        options.fixedThreads = modelOptions.fixedThreads
        options.gpuLayers = Int(modelOptions.gpuLayers)
        options.maxQueue = maxQueue
        options.parallel = parallel
        options.maxMessageBytes = maxMessageBytes
        options.useMmap = mmap
        options.limits.maxTokens = maxTokensLimit
        options.limits.maxSteps = maxStepsLimit

        // MCP's stdio transport is newline-delimited JSON.
        let framing: Framing = mcp ? .ndjson : self.framing
        let exit = Exit()
        let logger = Logger(label: "selfanchor.serve")
        let connection = Connection(framing: framing, maxMessageBytes: maxMessageBytes,
                                    sink: Connection.descriptorSink(protocolDescriptor), onBroken: {
            // The client closed our stdout: nobody can read the answers, so stop decoding for nobody.
            // Not on the writer's thread, which must go on.
            DispatchQueue.global().async {
                exit.now(1, because: "writing to stdout failed: the client closed the protocol stream; cancelling what is in flight and exiting", logger: logger)
            }
        })
        let output: @Sendable (Message) -> Void = { connection.send($0) }
        let leave: @Sendable (Int32) -> Void = { code in exit.now(code, because: nil, logger: logger) }
        let bridge = mcp ? MCPBridge(options: options, output: output, exit: leave) : nil
        let server = bridge?.server ?? Server(options: options, output: output, exit: leave)
        exit.attach(server: server, connection: connection)
        server.start()
        let receiver: any MessageReceiver
        if let bridge { receiver = bridge } else { receiver = server }
        connection.start(receiver: receiver)
        connection.run(reading: 0)
        server.drain()
        bridge?.close()
        connection.flush()
        throw ExitCode.success
    }
}

import Dispatch
import Llama
import SelfAnchorMCP
import SelfAnchorServer
import Synchronization

/// Ends the daemon once, from whichever thread asks first: cancels what is in flight, gives the
/// running requests a moment to stop at their next decode step (so llama.cpp is not torn down mid-decode),
/// writes what is still queued for the client, then leaves with `_exit`.
final class Exit: Sendable {
    /// What the exit stops and flushes, set once before any input is read. The server is held weakly:
    /// its output closure holds this object, and a cycle would keep the server (and the model) alive
    /// past the end of `run`.
    private struct Targets {
        weak var server: Server?
        var connection: Connection?
    }

    private let started = Atomic<Bool>(false)
    private let targets = Mutex(Targets())

    func attach(server: Server, connection: Connection) {
        targets.withLock { $0 = Targets(server: server, connection: connection) }
    }

    func now(_ code: Int32, because reason: String?, logger: Logger) {
        guard started.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
        if let reason { logger.error("\(reason)") }
        let (server, connection) = targets.withLock { ($0.server, $0.connection) }
        if let server {
            server.cancelAll()
            let drained = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                server.drain()
                drained.signal()
            }
            if drained.wait(timeout: .now() + 5) == .timedOut { logger.warning("the engine did not stop within 5 s; exiting anyway") }
        }
        if let connection, !connection.flush(timeout: .seconds(5)) {
            logger.warning("the client did not read its last \(connection.queuedBytes) bytes within 5 s; exiting anyway")
        }
        _exit(code)
    }
}
