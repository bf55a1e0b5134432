import ArgumentParser
import JSON
import Synchronization
import Llama
import SelfAnchor

#if canImport(Glibc)
    import Glibc
#endif

/// `selfanchor bench`: speed ratios measured side by side in one run on one model.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure decoding speed side by side and print ratios (absolute numbers vary; ratios do not).")

    @Option(name: .long, help: "Tokens generated per measurement.")
    var tokens: Int = 64

    @Option(name: .long, help: "Decode steps per raw llama_decode measurement (a rate; the decoders' rows use --tokens).")
    var rawSteps: Int = 32

    @Option(name: .long, help: "Repeat each measurement and keep the median.")
    var repeats: Int = 3

    @Flag(name: .long, help: "Disable llama.cpp's CPU weight repacking.")
    var noRepack = false

    @Option(name: .long, help: "Flash attention: auto, on, off.")
    var flashAttention: String = "auto"

    @Flag(name: .long, help: "Only the raw llama_decode measurements.")
    var rawOnly = false

    @Option(name: .long, help: "Requests in flight for the concurrency measurement.")
    var concurrent: Int = 4

    @Flag(name: .long, help: "Print one JSON object with every row's numbers instead of the text rows.")
    var json = false

    /// A neighbour process (`benchBeside`) writes a line to this descriptor and closes it once its model is
    /// loaded and it starts decoding, so the measurement beside it starts then, on any machine.
    @Option(name: .long, help: .hidden)
    var readyFd: Int32?

    @OptionGroup var modelOptions: ModelOptions

    /// The rows measured so far: printed as text at once, or kept for the one JSON object at the end.
    final class Output {
        let json: Bool
        private(set) var object: JSONObject = [:]
        init(json: Bool) { self.json = json }

        /// One text row, and its numbers under `key` (arrays grow by one element per row).
        func row(_ text: String, key: String, values: JSONObject, appending: Bool = false) {
            if !json { Terminal.write(text + "\n") }
            if appending {
                object[key] = .array((object[key]?.arrayValue ?? []) + [.object(values)])
            } else {
                object[key] = .object(values)
            }
        }

        func finish() {
            if json { Terminal.write(JSONValue.object(object).serialized() + "\n") }
        }
    }

    func validate() throws {
        for (flag, value) in [("--tokens", tokens), ("--raw-steps", rawSteps), ("--repeats", repeats), ("--concurrent", concurrent)]
            where value < 1
        {
            throw ValidationError("\(flag) must be at least 1 (got \(value))")
        }
    }

    /// The row of the configuration a plain `solve` uses is marked with this.
    static let defaultMarker = "  ← default"

    func run() throws {
        let output = Output(json: json)
        LlamaBackend.initialise(logLevel: .error)
        let model = try LlamaModel(path: ModelCatalog.path(for: modelOptions.model), repackWeights: !noRepack)
        var options = Engine.defaultContextOptions
        options.threads = modelOptions.threads
        options.adaptiveThreads = !modelOptions.fixedThreads
        options.flashAttention = flashAttention == "auto" ? nil : flashAttention == "on"
        var rawOptions = options
        rawOptions.sequences = 8
        let context = try LlamaContext(model: model, options: rawOptions)
        let prompt = try model.tokenize(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 20),
                                        addSpecial: true)
        if let readyFd {
            _ = "decoding\n".withCString { write(readyFd, $0, strlen($0)) }
            close(readyFd)
        }
        // Alternating, so that a slow spell of the machine hits every batch size alike.
        var samples: [Int: [Double]] = [:]
        for _ in 0..<repeats {
            for sequences in [1, 2, 3, 4, 8] {
                samples[sequences, default: []].append((try? rawRate(context, prompt: prompt, sequences: sequences)) ?? 0)
            }
            samples[-2, default: []].append((try? rawRate(context, prompt: prompt, sequences: 2, separately: true)) ?? 0)
        }
        let raw = samples.mapValues(median)
        let single = raw[1] ?? 0
        output.row("model: \(model.description), threads: \(options.effectiveThreads), \(tokens) tokens "
            + "(raw rows \(rawSteps) steps), median of \(repeats)",
                   key: "setup", values: ["model": .string(model.description), "threads": .int(Int(options.effectiveThreads)),
                                          "tokens": .int(tokens), "rawSteps": .int(rawSteps), "repeats": .int(repeats)])
        output.row("raw decode, 1 sequence:                 \(format(single)) tok/s per sequence",
                   key: "rawSingle", values: ["tokensPerSecond": .double(single)])
        let separate = raw[-2] ?? 0
        output.row("raw decode, 2 sequences one per decode: \(format(separate)) tok/s per sequence (\(format(separate / single))x)",
                   key: "rawSeparate", values: ["sequences": .int(2), "tokensPerSecond": .double(separate), "ratio": .double(separate / single)])
        for sequences in [2, 3, 4, 8] {
            let rate = raw[sequences] ?? 0
            output.row("raw decode, \(sequences) sequences in one batch:   \(format(rate)) tok/s per sequence (\(format(rate / single))x), "
                + "\(format(rate * Double(sequences) / single))x aggregate",
                       key: "rawBatched", values: ["sequences": .int(sequences), "tokensPerSecond": .double(rate),
                                                   "ratio": .double(rate / single),
                                                   "aggregateRatio": .double(rate * Double(sequences) / single)],
                       appending: true)
        }
        if rawOnly {
            output.finish()
            return
        }

        // The decoders, on the same question with the same budget, alternating so drift hits all alike.
        // The bench measures alone: its choice is stored for the engines after it (`BatchingChoiceStore`).
        let store = BatchingChoiceStore.standard
        let engine = try Engine(model: model, options: options, batching: .measuredAndStored(store))
        let calibration = engine.batchCalibration
        let sizes = BatchCalibration.measuredSizes.filter { calibration.batchMs[$0] != nil }
        let costs = sizes.map { "\($0) in one batch \(format(calibration.batchMs[$0]!)) ms (\(format(calibration.cost(ofBatch: $0)!)) singles)" }
        let halfThreads = calibration.reducedSingleMs.map { "; one token on half the threads \(format($0)) ms" } ?? ""
        output.row("batch calibration (at engine start):  one token \(format(calibration.singleMs)) ms; " + costs.joined(separator: ", ")
            + " → " + (calibration.smallRoundLimit == 0 ? "every round batched"
                : "rounds of ≤ \(calibration.smallRoundLimit) tokens one per decode") + halfThreads
            + " (stored in \(store.path) for later engines)",
                   key: "batchCalibration",
                   values: ["singleMs": .double(calibration.singleMs),
                            "batches": .array(sizes.map { size in
                                .object(["tokens": .int(size), "ms": .double(calibration.batchMs[size]!),
                                         "singles": .double(calibration.cost(ofBatch: size)!)])
                            }),
                            "smallRoundLimit": .int(calibration.smallRoundLimit), "storedIn": .string(store.path),
                            "reducedSingleMs": calibration.reducedSingleMs.map(JSONValue.double) ?? .null])
        var rates: [String: [Double]] = [:]
        var drafts: [String: Timings] = [:]
        for round in 0..<repeats {
            // attention-anchor, the slowest row by far and no target, runs once.
            for (name, run) in decoders() where round == 0 || name != "attention-anchor" {
                let timings = try run(engine)
                rates[name, default: []].append(timings.predictedPerSecond)
                drafts[name, default: Timings()].draftsN += timings.draftsN
                drafts[name, default: Timings()].draftedN += timings.draftedN
                drafts[name, default: Timings()].draftAcceptedN += timings.draftAcceptedN
            }
        }
        let plain = median(rates["plain greedy"] ?? [0])
        for (name, _) in decoders() {
            let rate = median(rates[name] ?? [0])
            let isDefault = name == Self.defaultSelfAnchor
            var values: JSONObject = ["name": .string(name), "tokensPerSecond": .double(rate),
                                      "ratioToPlain": .double(rate / plain), "default": .bool(isDefault)]
            var text = name.padding(44) + "\(format(rate)) tok/s (\(format(rate / plain))x plain)"
            if let counts = drafts[name], counts.draftsN > 0 {
                // Over all repeats: the share of drafted tokens the steered choice kept, and the tokens
                // kept per draft.
                let acceptance = Double(counts.draftAcceptedN) / Double(max(1, counts.draftedN))
                let accepted = Double(counts.draftAcceptedN) / Double(counts.draftsN)
                text += "; drafts accepted \(format(acceptance * 100))%, mean accepted length \(format(accepted))"
                values["acceptanceRate"] = .double(acceptance)
                values["meanAcceptedLength"] = .double(accepted)
            }
            output.row(text + (isDefault ? Self.defaultMarker : ""), key: "decoders", values: values, appending: true)
        }

        // The prompt cache: time from the request to its first generated text, with the shared prefix
        // (chat template and system prompt) cold, then cached by the previous request.
        var cold: [Double] = []
        var warm: [Double] = []
        for _ in 0..<repeats {
            engine.dropPromptCache()
            cold.append(try firstTextLatency(engine))
            warm.append(try firstTextLatency(engine))
        }
        let (coldMs, warmMs) = (median(cold), median(warm))
        output.row("prompt cache, first text (self-anchor): cold \(format(coldMs)) ms, warm \(format(warmMs)) ms "
            + "(\(format(warmMs / coldMs))x)",
                   key: "promptCache", values: ["coldMs": .double(coldMs), "warmMs": .double(warmMs), "ratio": .double(warmMs / coldMs)])

        try benchConcurrency(model: model, options: options, output: output)
        try benchBeside(engine, output: output)
        try benchLoading(path: model.path, output: output)
        output.finish()
    }

    /// The default Self-Anchor solve alone, then with another decoding process on the same cores (this
    /// binary's raw decode loop, in the same environment, so under the same OpenMP wait policy): a
    /// neighbour that adapts its threads as this one does, and one that keeps all of them (any other
    /// llama.cpp program); then the same with this process's threads fixed (`--fixed-threads`), which is
    /// what the thread governor is measured against.
    func benchBeside(_ engine: Engine, output: Output) throws {
        guard let (_, solve) = decoders().first(where: { $0.0 == Self.defaultSelfAnchor }) else { return }
        let adaptive = !modelOptions.fixedThreads
        // The governor is kept between solves (as a daemon keeps it between requests). A solve's time, and
        // the share of its decodes the governor ran on half the threads.
        func solveTimed(adaptiveThreads: Bool) throws -> (seconds: Double, halved: Double) {
            if engine.adaptiveThreads != adaptiveThreads { engine.setAdaptiveThreads(adaptiveThreads) }
            let before = adaptiveThreads ? engine.threadGovernor : nil
            let timings = try solve(engine)
            var halved = 0.0
            if let before, let after = engine.threadGovernor, after.decodes > before.decodes {
                halved = Double(after.reducedDecodes - before.reducedDecodes) / Double(after.decodes - before.decodes)
            }
            return ((timings.promptMs + timings.predictedMs) / 1000, halved)
        }
        var alone: [Double] = []
        var aloneFixed: [Double] = []
        var aloneHalved: [Double] = []
        for _ in 0..<repeats {
            let solved = try solveTimed(adaptiveThreads: adaptive)
            alone.append(solved.seconds)
            aloneHalved.append(solved.halved)
            if adaptive { aloneFixed.append(try solveTimed(adaptiveThreads: false).seconds) }
        }
        let policy = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"].compactMap { name in getenv(name).map { name + "=" + String(cString: $0) } }
        let waitPolicy = policy.isEmpty ? "libgomp's default wait" : policy.joined(separator: " ")
        if adaptive {
            let cost = median(alone) / median(aloneFixed)
            output.row("alone, threads adaptive vs fixed:     self-anchor \(format(median(alone))) s vs \(format(median(aloneFixed))) s "
                + "(\(format(cost))x the time; halved on \(format(median(aloneHalved) * 100))% of decodes)",
                       key: "aloneThreads", values: ["adaptiveSeconds": .double(median(alone)),
                                                     "fixedSeconds": .double(median(aloneFixed)), "ratio": .double(cost),
                                                     "halvedShare": .double(median(aloneHalved))])
        }
        var rows: [(name: String, neighbourFixed: Bool, adaptive: Bool)] = [("an adapting", false, adaptive), ("a fixed-thread", true, adaptive)]
        if adaptive { rows.append(("a fixed-thread", true, false)) }
        for row in rows {
            var arguments = ["bench", "--raw-only", "--repeats", "100000", "--model", modelOptions.model,
                             "--threads", String(modelOptions.threads)]
            if noRepack { arguments.append("--no-repack") }
            if row.neighbourFixed { arguments.append("--fixed-threads") }
            // Returns once its model is loaded and it decodes (until stopped).
            guard let neighbour = Neighbour(arguments) else {
                output.row("beside another decoding process:      could not start one", key: "beside",
                           values: ["started": .bool(false)], appending: true)
                return
            }
            var beside: [Double] = []
            var share: [Double] = []
            // The reference row (this process on fixed threads too) is the slow one it is measured against: once.
            for _ in 0..<(row.adaptive == adaptive ? repeats : 1) {
                let solved = try solveTimed(adaptiveThreads: row.adaptive)
                beside.append(solved.seconds)
                share.append(solved.halved)
            }
            neighbour.stop()
            let reference = row.adaptive ? median(alone) : median(aloneFixed)
            let ratio = median(beside) / reference
            let threads = row.adaptive ? "threads adaptive, halved on \(format(median(share) * 100))% of decodes" : "threads fixed"
            let isDefault = row.adaptive == adaptive && !row.neighbourFixed
            output.row("beside \(row.name) neighbour:".padding(38) + "self-anchor \(format(median(beside))) s vs \(format(reference)) s alone "
                + "(\(format(ratio))x the time; \(threads); \(waitPolicy))" + (isDefault ? Self.defaultMarker : ""),
                       key: "beside", values: [
                        "started": .bool(true), "neighbourThreads": .string(row.neighbourFixed ? "fixed" : "adaptive"),
                        "threads": .string(row.adaptive ? "adaptive" : "fixed"), "besideSeconds": .double(median(beside)),
                        "aloneSeconds": .double(reference), "ratio": .double(ratio), "halvedShare": .double(median(share)),
                        "waitPolicy": .string(waitPolicy), "default": .bool(isDefault),
                       ], appending: true)
        }
        engine.setAdaptiveThreads(adaptive)
    }

    /// Aggregate tokens/s of `concurrent` solves decoding together (one engine, continuous batching)
    /// against the same solves one after another on the same engine.
    func benchConcurrency(model: LlamaModel, options: ContextOptions, output: Output) throws {
        let engine = try Engine(model: model, options: options, parallel: concurrent)
        let questions = (0..<concurrent).map { Self.concurrentQuestions[$0 % Self.concurrentQuestions.count] }
        let kinds: [(String, Strategy, SteeringOptions.MaskedPass)] = [
            ("cot", .cot, .every), ("self-anchor (\(SteeringOptions.defaultMaskedPass.rawValue))", .selfAnchor,
                                    SteeringOptions.defaultMaskedPass),
        ]
        for (name, strategy, maskedPass) in kinds {
            func request(_ question: String) -> SolveRequest {
                var request = SolveRequest(question: question, strategy: strategy)
                request.maxTokens = tokens
                request.steering.maskedPass = maskedPass
                return request
            }
            _ = try engine.solve(request(questions[0]))  // the prompt cache, warm for both
            var serial: [Double] = []
            var together: [Double] = []
            var batching: [Double] = []
            let clock = ContinuousClock()
            for _ in 0..<repeats {
                var start = clock.now
                var produced = 0
                for question in questions { produced += try engine.solve(request(question)).timings.predictedN }
                serial.append(Double(produced) / ((clock.now - start).milliseconds / 1000))
                let lock = ConditionLock()
                produced = 0
                var failure: (any Error)?
                let before = (engine.batchedDecodes, engine.batchedSubmissions)
                start = clock.now
                runConcurrently(questions.count) { index in
                    do {
                        let count = try engine.solve(request(questions[index])).timings.predictedN
                        lock.withLock { produced += count }
                    } catch {
                        lock.withLock { failure = error }
                    }
                }
                if let failure { throw failure }
                together.append(Double(produced) / ((clock.now - start).milliseconds / 1000))
                batching.append(Double(engine.batchedSubmissions - before.1) / Double(max(1, engine.batchedDecodes - before.0)))
            }
            let (one, all) = (median(serial), median(together))
            let isDefault = strategy == .selfAnchor
            output.row("\(concurrent) at once, \(name):".padding(38)
                + "\(format(all)) tok/s aggregate vs \(format(one)) one after another (\(format(all / one))x; "
                + "\(format(median(batching))) requests per decode)" + (isDefault ? Self.defaultMarker : ""),
                       key: "concurrency", values: ["name": .string(name), "requests": .int(concurrent),
                                                    "aggregateTokensPerSecond": .double(all), "serialTokensPerSecond": .double(one),
                                                    "ratio": .double(all / one), "requestsPerDecode": .double(median(batching)),
                                                    "default": .bool(isDefault)],
                       appending: true)
        }
    }

    /// Another `selfanchor` process, its output discarded, stopped with SIGKILL.
    struct Neighbour {
        let pid: pid_t
        /// How long its model load may take before it is given up.
        static let readyTimeoutMs: Int32 = 600_000

        /// Starts it and waits until it says it decodes (`--ready-fd`); nil when it cannot be started or
        /// ends (or hangs) before that.
        init?(_ arguments: [String]) {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { return nil }
            let (readEnd, writeEnd) = (ends[0], ends[1])
            // The child inherits the write end (its `--ready-fd`), not the read end.
            _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
            defer { close(readEnd) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            let argv = (["selfanchor"] + arguments + ["--ready-fd", String(writeEnd)]).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nil, argv, environ) == 0
            close(writeEnd)
            guard spawned else { return nil }
            self.pid = pid
            // A line, or end of file if it died first (the pipe's only other writer is gone).
            var ready = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            var byte: UInt8 = 0
            guard poll(&ready, 1, Self.readyTimeoutMs) == 1, read(readEnd, &byte, 1) == 1 else {
                stop()
                return nil
            }
        }

        func stop() {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    /// Model load time, memory-mapped and read into memory, alternating.
    func benchLoading(path: String, output: Output) throws {
        var mapped: [Double] = []
        var read: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<repeats {
            for useMmap in [true, false] {
                let start = clock.now
                let model = try LlamaModel(path: path, useMmap: useMmap, repackWeights: !noRepack)
                let elapsed = (clock.now - start).milliseconds
                _ = model.vocabularySize
                if useMmap { mapped.append(elapsed) } else { read.append(elapsed) }
            }
        }
        output.row("model load:".padding(38) + "mmap \(format(median(mapped))) ms, read \(format(median(read))) ms",
                   key: "modelLoad", values: ["mmapMs": .double(median(mapped)), "readMs": .double(median(read))])
    }

    static let concurrentQuestions = [
        question,
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
        "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her parents. How much more money does Betty need to buy the wallet?",
    ]

    /// Milliseconds from a self-anchor request to its first generated text (a `plan_delta`).
    func firstTextLatency(_ engine: Engine) throws -> Double {
        var request = SolveRequest(question: Self.question, strategy: .selfAnchor)
        request.maxTokens = 4
        let clock = ContinuousClock()
        let start = clock.now
        let first = Mutex<Duration?>(nil)
        _ = try engine.solve(request) { event in
            if case .delta = event { first.withLock { $0 = $0 ?? clock.now - start } }
        }
        let elapsed = first.withLock { $0 } ?? (clock.now - start)
        return elapsed.milliseconds
    }

    static let question =
        "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?"

    /// The decoder rows of Self-Anchor and spa, one per masked-pass mode.
    static func rowName(_ strategy: Strategy, _ maskedPass: SteeringOptions.MaskedPass) -> String {
        let mode: String
        switch maskedPass {
        case .every: mode = "masked pass every token"
        case .speculative: mode = "speculative masked pass"
        case .adaptive: mode = "adaptive masked pass \(SteeringOptions.defaultSkipMaskedAbove)"
        }
        return (strategy == .spa ? "spa (question anchored)" : "self-anchor") + ", " + mode
    }

    /// The name of the decoder row that is `solve`'s default configuration.
    static let defaultSelfAnchor = rowName(.selfAnchor, SteeringOptions.defaultMaskedPass)

    /// Plain greedy decoding, SPA and Self-Anchor in each masked-pass mode, and attention-anchor
    /// (Self-Anchor plus an attention-reading pass per line), each generating `tokens` tokens.
    func decoders() -> [(String, (Engine) throws -> Timings)] {
        func solve(_ strategy: Strategy, _ maskedPass: SteeringOptions.MaskedPass = SteeringOptions.defaultMaskedPass)
            -> (Engine) throws -> Timings
        {
            { engine in
                var request = SolveRequest(question: Self.question, strategy: strategy)
                request.steering.maskedPass = maskedPass
                request.maxTokens = tokens
                return try engine.solve(request).timings
            }
        }
        let messages: [ChatMessage] = [.user(Self.question + " Explain step by step.")]
        func generate(_ anchors: [String], _ maskedPass: SteeringOptions.MaskedPass = .every) -> (Engine) throws -> Timings {
            { engine in
                var request = GenerateRequest(messages: messages, anchors: anchors)
                request.maskedPass = maskedPass
                request.maxTokens = tokens
                return try engine.generate(request).timings
            }
        }
        let modes = SteeringOptions.MaskedPass.allCases
        return [("plain greedy", generate([]))]
            + modes.map { (Self.rowName(.spa, $0), generate([Self.question], $0)) }
            + modes.map { (Self.rowName(.selfAnchor, $0), solve(.selfAnchor, $0)) }
            + [("attention-anchor", solve(.attentionAnchor))]
    }

    /// Generated tokens per second per sequence when `sequences` continuations advance together.
    /// With `separately`, each sequence's token gets its own `llama_decode` call instead of sharing one.
    func rawRate(_ context: LlamaContext, prompt: [LlamaToken], sequences: Int, separately: Bool = false) throws -> Double {
        // The prompt is decoded into sequence 0 once per context and kept; each call drops what the last
        // one generated and shares the prompt with the sequences it needs.
        let batch = LlamaBatch(capacity: max(prompt.count, sequences))
        if context.lastPosition(sequence: 0) + 1 < prompt.count {
            context.clearMemory()
            batch.add(prompt, startingAt: 0, sequence: 0, logitsForLast: true)
            try context.decode(batch)
        }
        for sequence in 0..<Int32(context.options.sequences) {
            context.removeTokens(sequence: sequence, from: sequence == 0 ? Int32(prompt.count) : 0)
        }
        for sequence in 1..<max(sequences, 1) { context.copyTokens(from: 0, to: Int32(sequence)) }
        let clock = ContinuousClock()
        let start = clock.now
        for step in 0..<rawSteps {
            // Each sequence's next token (reading its logits as a sampler would), then one decode for all
            // of them, or one each.
            batch.clear()
            for sequence in 0..<sequences {
                batch.add(LlamaToken(100 + sequence + step % 50), position: Int32(prompt.count + step),
                          sequences: [Int32(sequence)], logits: true)
                if separately {
                    try context.decode(batch)
                    _ = LlamaSampler.argmax(context.logits(at: 0))
                    batch.clear()
                }
            }
            if !separately {
                try context.decode(batch)
                for index in 0..<sequences { _ = LlamaSampler.argmax(context.logits(at: Int32(index))) }
            }
        }
        let elapsed = clock.now - start
        let seconds = elapsed.milliseconds / 1000
        return Double(rawSteps) / seconds
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    func format(_ value: Double) -> String { String((value * 100).rounded() / 100) }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(1, width - count)) }
}
