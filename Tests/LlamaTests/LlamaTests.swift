import Testing
@testable import Llama

#if canImport(Glibc)
    import Glibc
#endif

/// The real SmolLM2 test model, loaded once for the suite.
enum TestModel {
    static let path = ModelCatalog.path(for: "test")
    static let shared: LlamaModel = {
        LlamaBackend.initialise(logLevel: .error)
        do { return try LlamaModel(path: path) } catch { fatalError("test model: \(error) — run `make setup-test`") }
    }()

    static func context(sequences: Int = 2, contextSize: Int = 1024) throws -> LlamaContext {
        var options = ContextOptions()
        options.contextSize = contextSize
        options.sequences = sequences
        return try LlamaContext(model: shared, options: options)
    }

    /// Greedy decoding of `count` tokens after `prompt` in one sequence.
    static func greedy(_ context: LlamaContext, prompt: [LlamaToken], count: Int) throws -> [LlamaToken] {
        let batch = LlamaBatch(capacity: max(prompt.count, 1))
        batch.add(prompt, startingAt: 0, sequence: 0, logitsForLast: true)
        try context.decode(batch)
        var output: [LlamaToken] = []
        var position = Int32(prompt.count)
        var index = Int32(batch.count - 1)
        for _ in 0..<count {
            let token = LlamaSampler.argmax(context.logits(at: index))
            output.append(token)
            batch.clear()
            index = batch.add(token, position: position, sequences: [0], logits: true)
            position += 1
            try context.decode(batch)
        }
        return output
    }
}

@Suite(.serialized) struct LlamaModelTests {
    @Test func loadsAndDescribesTheModel() {
        let model = TestModel.shared
        #expect(model.vocabularySize > 40_000)
        #expect(model.layerCount == 30)
        #expect(model.trainingContextLength >= 2048)
        #expect(model.description.contains("llama"))
        #expect(model.chatTemplate?.contains("<|im_start|>") == true)
    }

    @Test func tokenizeDetokenizeRoundTripIncludingMultiByte() throws {
        let model = TestModel.shared
        for text in ["Janet's ducks lay 16 eggs per day.", "naïve café — 日本語のテキスト 🧮🦆", "  x\n\ty  "] {
            let tokens = try model.tokenize(text)
            #expect(!tokens.isEmpty)
            #expect(model.detokenize(tokens) == text)
        }
    }

    @Test func multiByteCharactersSplitAcrossTokensAreBuffered() throws {
        let model = TestModel.shared
        let text = "🧮🦆日本"
        let tokens = try model.tokenize(text)
        // The byte-level vocabulary splits these characters over several tokens.
        #expect(tokens.count > text.count)
        let pieces = tokens.map { model.piece($0) }
        #expect(pieces.contains { String(validating: $0, as: UTF8.self) == nil })
        var decoder = UTF8StreamDecoder()
        var streamed: [String] = []
        for piece in pieces {
            let chunk = decoder.append(piece)
            #expect(!chunk.contains("\u{FFFD}"))
            if !chunk.isEmpty { streamed.append(chunk) }
        }
        streamed.append(decoder.finish())
        #expect(streamed.joined() == text)
    }

    @Test func utf8DecoderHoldsOnlyIncompleteTails() {
        var decoder = UTF8StreamDecoder()
        let bytes = Array("é🧮".utf8)  // C3 A9 F0 9F A7 AE
        #expect(decoder.append(bytes[0..<1]) == "")
        #expect(decoder.append(bytes[1..<3]) == "é")
        #expect(decoder.pendingByteCount == 1)
        #expect(decoder.append(bytes[3..<6]) == "🧮")
        #expect(decoder.append([0xFF, 0x41]) == "\u{FFFD}A")
        #expect(decoder.append([0xE6]) == "")
        #expect(decoder.finish() == "\u{FFFD}")
    }

    @Test func chatTemplateIsApplied() throws {
        let text = try TestModel.shared.applyChatTemplate([.system("Be brief."), .user("What is 2+2?")])
        #expect(text.contains("<|im_start|>system\nBe brief.<|im_end|>"))
        #expect(text.contains("<|im_start|>user\nWhat is 2+2?<|im_end|>"))
        #expect(text.hasSuffix("<|im_start|>assistant\n"))
        let tokens = try TestModel.shared.tokenize(text, parseSpecial: true)
        #expect(tokens.contains { TestModel.shared.isControl($0) })
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: LlamaError.fileNotFound(path: "/nonexistent/model.gguf")) {
            try LlamaModel(path: "/nonexistent/model.gguf")
        }
    }

    @Test func nonGGUFFileIsAClearError() throws {
        let path = "/tmp/selfanchor-not-gguf-\(getpid()).bin"
        let file = fopen(path, "wb")!
        fputs("this is not a model, just some text that is long enough", file)
        fclose(file)
        defer { unlink(path) }
        do {
            _ = try LlamaModel(path: path)
            Issue.record("a text file loaded as a model")
        } catch {
            guard case .notGGUF(let reportedPath, let reason) = error else {
                Issue.record("wrong error: \(error)")
                return
            }
            #expect(reportedPath == path)
            #expect(reason.contains("magic"))
        }
        #expect(throws: LlamaError.self) { try LlamaModel(path: "/tmp") }
    }
}

@Suite(.serialized) struct LlamaDecodingTests {
    static func prompt() throws -> [LlamaToken] {
        let model = TestModel.shared
        let text = try model.applyChatTemplate([.user("Write a short poem about the sea.")])
        return try model.tokenize(text, parseSpecial: true)
    }

    @Test func greedyDecodingIsDeterministic() throws {
        let prompt = try Self.prompt()
        let first = try TestModel.greedy(TestModel.context(), prompt: prompt, count: 32)
        let second = try TestModel.greedy(TestModel.context(), prompt: prompt, count: 32)
        #expect(first.count == 32)
        #expect(first == second)
        #expect(!TestModel.shared.detokenize(first).isEmpty)
    }

    @Test func twoSequencesInOneBatchMatchASingleSequenceRun() throws {
        let prompt = try Self.prompt()
        let other = try TestModel.shared.tokenize(
            TestModel.shared.applyChatTemplate([.user("List three prime numbers.")]), parseSpecial: true)
        let single = try TestModel.greedy(TestModel.context(), prompt: prompt, count: 24)

        let context = try TestModel.context(sequences: 2)
        let batch = LlamaBatch(capacity: prompt.count + other.count)
        var indices = [
            batch.add(prompt, startingAt: 0, sequence: 0, logitsForLast: true),
            batch.add(other, startingAt: 0, sequence: 1, logitsForLast: true),
        ]
        try context.decode(batch)
        var positions = [Int32(prompt.count), Int32(other.count)]
        var outputs: [[LlamaToken]] = [[], []]
        for _ in 0..<24 {
            let tokens = indices.map { LlamaSampler.argmax(context.logits(at: $0)) }
            batch.clear()
            for sequence in 0..<2 {
                outputs[sequence].append(tokens[sequence])
                indices[sequence] = batch.add(tokens[sequence], position: positions[sequence],
                                              sequences: [Int32(sequence)], logits: true)
                positions[sequence] += 1
            }
            try context.decode(batch)
        }
        #expect(outputs[0] == single)
        #expect(outputs[0] != outputs[1])
    }

    @Test func sharedPrefixCopiedBetweenSequencesContinuesIdentically() throws {
        let prompt = try Self.prompt()
        let single = try TestModel.greedy(TestModel.context(), prompt: prompt, count: 16)
        // Decode all but the last prompt token into sequence 0, share it with sequence 1, finish there.
        let context = try TestModel.context(sequences: 2)
        let batch = LlamaBatch(capacity: prompt.count)
        batch.add(prompt.dropLast(), startingAt: 0, sequence: 0, logitsForLast: false)
        try context.decode(batch)
        context.copyTokens(from: 0, to: 1, positions: 0, upTo: Int32(prompt.count - 1))
        #expect(context.lastPosition(sequence: 1) == Int32(prompt.count - 2))
        batch.clear()
        var index = batch.add(prompt.last!, position: Int32(prompt.count - 1), sequences: [1], logits: true)
        try context.decode(batch)
        var output: [LlamaToken] = []
        var position = Int32(prompt.count)
        for _ in 0..<16 {
            let token = LlamaSampler.argmax(context.logits(at: index))
            output.append(token)
            batch.clear()
            index = batch.add(token, position: position, sequences: [1], logits: true)
            position += 1
            try context.decode(batch)
        }
        #expect(output == single)
    }

    @Test func abortCallbackStopsADecode() throws {
        let context = try TestModel.context()
        let prompt = try Self.prompt()
        context.shouldAbort = { true }
        let batch = LlamaBatch(capacity: prompt.count)
        batch.add(prompt, startingAt: 0, sequence: 0, logitsForLast: true)
        #expect(throws: LlamaError.decodeAborted) { try context.decode(batch) }
    }

    @Test func seededSamplingIsReproducible() throws {
        let context = try TestModel.context()
        let prompt = try Self.prompt()
        let batch = LlamaBatch(capacity: prompt.count)
        batch.add(prompt, startingAt: 0, sequence: 0, logitsForLast: true)
        try context.decode(batch)
        let logits = context.logits(at: Int32(prompt.count - 1))
        let options = SamplingOptions(temperature: 1.5, topP: 0.95, topK: 50, seed: 42)
        let first = (0..<20).map { _ in LlamaSampler(options: options).sample(logits) }
        let sampler = LlamaSampler(options: options)
        let again = (0..<20).map { _ in LlamaSampler(options: options).sample(logits) }
        #expect(first == again)
        let draws = Set((0..<50).map { _ in sampler.sample(logits) })
        #expect(draws.count > 1)
    }
}
