import ArgumentParser
import Llama
import SelfAnchor

/// Options every model-using subcommand shares: which model, how to run it, how chatty llama.cpp is.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model: 'default' (Qwen2.5-Coder-1.5B), 'fast' (Qwen2.5-Coder-0.5B), 'test' (SmolLM2-135M), a catalog name (qwen-1.5b, qwen-0.5b, smollm2-135m), or a GGUF path.")
    var model: String = "default"

    @Option(name: .long, help: "CPU threads (0: one per core).")
    var threads: Int = 0

    @Flag(name: .long, help: "Decode on --threads threads always (by default generation drops to half of them while that is faster, as beside another decoding process).")
    var fixedThreads = false

    @Option(name: .long, help: "Context size in tokens of one request, shared by its real and masked contexts.")
    var contextSize: Int = 4096

    @Option(name: .long, help: "Layers to offload to a GPU (needs a GPU build of llama.cpp; -1: all).")
    var gpuLayers: Int32 = 0

    @Option(name: .long, help: "llama.cpp log level on stderr: debug, info, warning, error, none.")
    var llamaLog: String = "error"

    func validate() throws {
        guard LlamaBackend.LogLevel.allCases.contains(where: { "\($0)" == llamaLog }) else {
            throw ValidationError("--llama-log must be one of debug, info, warning, error, none")
        }
        guard contextSize >= 256 else { throw ValidationError("--context-size must be at least 256") }
    }

    /// Loads the model and creates the engine, with a message that says what to do when it fails.
    func makeEngine(parallel: Int = 1) throws -> Engine {
        LlamaBackend.initialise(logLevel: LlamaBackend.LogLevel.allCases.first { "\($0)" == llamaLog })
        let path = ModelCatalog.path(for: model)
        do {
            let loaded = try LlamaModel(path: path, gpuLayers: gpuLayers)
            var options = Engine.defaultContextOptions
            options.contextSize = contextSize
            options.threads = threads
            options.adaptiveThreads = !fixedThreads
            return try Engine(model: loaded, options: options, parallel: parallel)
        } catch .fileNotFound(let missing) where ModelCatalog.isCatalogName(model) {
            throw CommandFailure("model '\(model)' is not installed at \(missing); \(ModelCatalog.installHint(for: model))")
        } catch {
            throw CommandFailure(error.description)
        }
    }
}

/// A failure reported to the user as one line on stderr, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
