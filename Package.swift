// swift-tools-version:6.2
import PackageDescription

// llama.cpp is found through `.deps/llama`, a link that `scripts/setup-llama.sh` points at the
// pinned llama-cpp-python install (or at $LLAMA_PREFIX): `<prefix>/include/llama.h`, `<prefix>/lib/libllama.so`.
// The rpath names the link itself, so re-pointing it needs no manifest change.
let llamaLib = Context.packageDirectory + "/.deps/llama/lib"

let package = Package(
    name: "selfanchor",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "selfanchor", targets: ["selfanchor"]),
        .library(name: "SelfAnchor", targets: ["SelfAnchor"]),
        .library(name: "JSON", targets: ["JSON"]),
        .library(name: "Llama", targets: ["Llama"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C: jansson through pkg-config, plus a shim for its function-like macros.
        .systemLibrary(
            name: "CJansson",
            pkgConfig: "jansson",
            providers: [.apt(["libjansson-dev"])]
        ),
        .target(name: "CJanssonShim", dependencies: ["CJansson"]),
        // C: llama.cpp's public header and libllama.
        .systemLibrary(name: "CLlama"),

        // Swift value API over jansson: parse and write JSON.
        .target(
            name: "JSON",
            dependencies: [
                "CJansson", "CJanssonShim",
                .product(name: "Collections", package: "swift-collections"),
            ]
        ),
        // Whole-file reads and atomic writes, with one set of error messages.
        .target(name: "TextFiles"),
        // Owns llama.cpp's model, context, batch and sampler handles.
        .target(
            name: "Llama",
            dependencies: ["CLlama"],
            linkerSettings: [
                // An installed binary (`make install`) finds the libraries beside it first.
                .unsafeFlags([
                    "-L" + llamaLib, "-Xlinker", "-rpath", "-Xlinker", "$ORIGIN/../lib/selfanchor",
                    "-Xlinker", "-rpath", "-Xlinker", llamaLib,
                ])
            ]
        ),
        // Attention maps read during a forward pass: WAAD, FAI, preplan/anchor tokens, credit weights, report.
        .target(name: "AttentionAnalysis", dependencies: ["Llama"]),
        // The Self-Anchor decoder, SPA steering, baselines, step parsing and answer extraction.
        .target(name: "SelfAnchor", dependencies: ["Llama", "AttentionAnalysis", "TextFiles"]),
        // JSON-RPC 2.0 message types (no I/O).
        .target(name: "JSONRPC", dependencies: ["JSON"]),
        // Frames bytes: LSP Content-Length headers or newline-delimited messages (no JSON).
        .target(name: "JSONRPCTransport"),
        // One client's connection: bytes in (framed, parsed, decoded, errors answered), messages out
        // through a bounded queue and its own writer.
        .target(
            name: "JSONRPCConnection",
            dependencies: ["JSON", "JSONRPC", "JSONRPCTransport", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // The selfanchor protocol's wire shapes: every method's params, results and events (no I/O, no
        // decoder types).
        .target(name: "SelfAnchorProtocol", dependencies: ["JSONRPC", "JSON"]),
        // Between the wire shapes and the decoder's types, in both directions (one mapping of each).
        .target(name: "WireMapping", dependencies: ["SelfAnchorProtocol", "SelfAnchor", "AttentionAnalysis", "Llama"]),
        // The daemon's dispatcher: lifecycle, admission queue, request tasks, cancellation (messages out
        // through a closure: no reading or writing of its own); InProcessClient drives it through a Connection.
        .target(
            name: "SelfAnchorServer",
            dependencies: [
                "SelfAnchorProtocol", "WireMapping", "JSONRPC", "JSONRPCConnection", "JSONRPCTransport", "JSON", "SelfAnchor",
                "Llama", "AttentionAnalysis", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `serve --mcp`: the Model Context Protocol, translated to and from the daemon's dispatcher.
        .target(name: "SelfAnchorMCP", dependencies: ["JSON", "JSONRPC", "SelfAnchorProtocol", "SelfAnchorServer"]),
        // `selfanchor eval`: benchmark loaders, the resumable runner, statistics and the report.
        .target(name: "Evaluation", dependencies: ["SelfAnchor", "SelfAnchorProtocol", "WireMapping", "JSON", "Llama", "TextFiles"]),
        // The command line.
        .executableTarget(
            name: "selfanchor",
            dependencies: [
                "SelfAnchor", "JSON", "Llama", "JSONRPC", "JSONRPCTransport", "JSONRPCConnection", "SelfAnchorServer", "Evaluation",
                "SelfAnchorProtocol", "AttentionAnalysis", "SelfAnchorMCP", "WireMapping", "TextFiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "LlamaTests", dependencies: ["Llama"]),
        .testTarget(name: "AttentionAnalysisTests", dependencies: ["AttentionAnalysis", "Llama"]),
        .testTarget(name: "SelfAnchorTests", dependencies: ["SelfAnchor", "Llama", "JSON"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "SelfAnchor", "Llama", "JSON", "TextFiles"]),
        .testTarget(name: "ServerTests", dependencies: ["SelfAnchorServer", "JSONRPC", "JSONRPCTransport", "JSONRPCConnection", "JSON"]),
    ]
)
