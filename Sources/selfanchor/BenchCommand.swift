import ArgumentParser
import Llama
import SelfAnchor

/// `selfanchor bench`: speed ratios measured side by side in one run on one model.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure decoding speed side by side and print ratios (absolute numbers vary; ratios do not).")

    @Option(name: .long, help: "Tokens generated per measurement.")
    var tokens: Int = 64

    @Option(name: .long, help: "Repeat each measurement and keep the median.")
    var repeats: Int = 3

    @Flag(name: .long, help: "Disable llama.cpp's CPU weight repacking.")
    var noRepack = false

    @Option(name: .long, help: "Flash attention: auto, on, off.")
    var flashAttention: String = "auto"

    @Flag(name: .long, help: "Only the raw llama_decode measurements.")
    var rawOnly = false

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        LlamaBackend.initialise(logLevel: .error)
        let model = try LlamaModel(path: ModelCatalog.path(for: modelOptions.model), repackWeights: !noRepack)
        var options = Engine.defaultContextOptions
        options.threads = modelOptions.threads
        options.flashAttention = flashAttention == "auto" ? nil : flashAttention == "on"
        let context = try LlamaContext(model: model, options: options)
        let prompt = try model.tokenize(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 20),
                                        addSpecial: true)
        let single = median((0..<repeats).map { _ in (try? rawRate(context, prompt: prompt, sequences: 1)) ?? 0 })
        let double = median((0..<repeats).map { _ in (try? rawRate(context, prompt: prompt, sequences: 2)) ?? 0 })
        let triple = median((0..<repeats).map { _ in (try? rawRate(context, prompt: prompt, sequences: 3)) ?? 0 })
        Terminal.write("model: \(model.description), threads: \(options.effectiveThreads), \(tokens) tokens, median of \(repeats)\n")
        Terminal.write("raw decode, 1 sequence:                 \(format(single)) tok/s per sequence\n")
        Terminal.write("raw decode, 2 sequences in one batch:   \(format(double)) tok/s per sequence (\(format(double / single))x)\n")
        Terminal.write("raw decode, 3 sequences in one batch:   \(format(triple)) tok/s per sequence (\(format(triple / single))x)\n")
    }

    /// Generated tokens per second per sequence when `sequences` continuations advance together.
    func rawRate(_ context: LlamaContext, prompt: [LlamaToken], sequences: Int) throws -> Double {
        context.clearMemory()
        let batch = LlamaBatch(capacity: max(prompt.count, sequences))
        batch.add(prompt, startingAt: 0, sequence: 0, logitsForLast: true)
        try context.decode(batch)
        for sequence in 1..<max(sequences, 1) { context.copyTokens(from: 0, to: Int32(sequence)) }
        let clock = ContinuousClock()
        let start = clock.now
        for step in 0..<tokens {
            batch.clear()
            for sequence in 0..<sequences {
                let token = LlamaSampler.argmax(context.logits(at: Int32(step == 0 ? prompt.count - 1 : sequence)))
                _ = token
            }
            for sequence in 0..<sequences {
                batch.add(LlamaToken(100 + sequence + step % 50), position: Int32(prompt.count + step),
                          sequences: [Int32(sequence)], logits: true)
            }
            try context.decode(batch)
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(tokens) / seconds
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    func format(_ value: Double) -> String { String((value * 100).rounded() / 100) }
}
