import Testing
import Llama
import SelfAnchor
import JSON
@testable import Evaluation
import TextFiles

#if canImport(Glibc)
    import Glibc
#endif

func temporaryFile(_ lines: [String]) throws -> String {
    let path = "/tmp/selfanchor-eval-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).jsonl"
    try writeText(lines.joined(separator: "\n") + "\n", to: path)
    return path
}

@Suite struct DatasetLoaderTests {
    @Test func flatLayoutOfTheSharedDevSplits() throws {
        let items = try DatasetLoader.load(path: try temporaryFile([
            #"{"id": "gsm8k-0", "question": "Janet's ducks lay 16 eggs per day...", "answer": "18"}"#,
            #"{"id": "strategyqa-0", "question": "Is it common to see frost during some college commencements?", "answer": "Yes"}"#,
            "",
            #"{"id": "math500-0", "question": "Convert the point $(0,3)$ to polar coordinates.", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)"}"#,
        ]), task: nil)
        #expect(items.count == 3)
        #expect(items[0].task == .number && items[0].reference == "18")
        #expect(items[1].task == .yesno && items[1].reference == "yes")
        #expect(items[2].task == .math)
        let arc = try DatasetLoader.load(path: try temporaryFile([
            #"{"id": "q1", "question": "Which is a mammal?", "choices": {"A": "shark", "B": "whale"}, "answer": "B"}"#,
        ]), task: nil)
        #expect(arc[0].task == .choice)
        #expect(arc[0].question.contains("A. shark\nB. whale"))
        #expect(arc[0].reference == "B")
    }

    /// ARC labels some items' options 1–4 (8 of the 200 in arc-easy-dev): they are asked with letters.
    @Test func numberedOptionsAreAskedWithLetters() throws {
        let items = try DatasetLoader.load(path: try temporaryFile([
            #"{"id": "n1", "question": "Plants and frogs both", "choices": {"1": "obtain energy", "2": "escape", "3": "sleep"}, "answer": "3"}"#,
            #"{"id": "n2", "question": {"stem": "Pick", "choices": [{"label": "1", "text": "x"}, {"label": "2", "text": "y"}]}, "answerKey": "2"}"#,
        ]), task: nil)
        #expect(items[0].question.hasSuffix("Options:\nA. obtain energy\nB. escape\nC. sleep"))
        #expect(items[0].reference == "C")
        #expect(items[1].question.hasSuffix("A. x\nB. y") && items[1].reference == "B")
    }

    @Test func gsm8kMathStrategyQAAndMultipleChoiceLayouts() throws {
        let path = try temporaryFile([
            #"{"question": "Janet has 3 apples and buys 4.", "answer": "She has 3 + 4 = <<3+4=7>>7.\n#### 1,007"}"#,
            #"{"problem": "What is 1/2 + 1/4?", "solution": "It is $\\boxed{\\frac{3}{4}}$."}"#,
            #"{"qid": "s1", "question": "Is water wet?", "answer": true}"#,
            #"{"id": "arc1", "question": {"stem": "Which is hot?", "choices": [{"label": "A", "text": "ice"}, {"label": "B", "text": "fire"}]}, "answerKey": "B"}"#,
            #"{"id": "hf1", "question": "Pick one", "choices": {"label": ["A", "B", "C"], "text": ["x", "y", "z"]}, "answerKey": "C"}"#,
            #"{"id": "olmo1", "query": "Question: Which is cold?\nAnswer:", "choices": ["fire", "ice"], "gold": 1}"#,
            #"{"id": "olmo1", "query": "Question: Which is cold?\nAnswer:", "choices": ["fire", "ice"], "gold": 1}"#,
        ])
        let items = try DatasetLoader.load(path: path, task: nil)
        #expect(items.map(\.task) == [.number, .math, .yesno, .choice, .choice, .choice])
        #expect(items[0].reference == "1007")
        #expect(items[1].reference == "\\frac{3}{4}")
        #expect(items[2].reference == "yes" && items[2].id == "s1")
        #expect(items[3].reference == "B" && items[3].question.hasPrefix("Which is hot?"))
        #expect(items[4].question.contains("C. z"))
        #expect(items[5].reference == "B" && items[5].question.hasPrefix("Which is cold?"))
    }

    @Test func badFilesGiveClearErrors() throws {
        #expect(throws: DatasetError.self) { try DatasetLoader.load(path: "/nonexistent.jsonl", task: nil) }
        #expect(throws: DatasetError.self) { try DatasetLoader.load(path: try temporaryFile(["{not json"]), task: nil) }
        #expect(throws: DatasetError.self) { try DatasetLoader.load(path: try temporaryFile([#"{"text": "no question"}"#]), task: nil) }
    }
}

@Suite struct StatisticsTests {
    @Test func wilsonInterval() {
        let interval = Statistics.wilson(successes: 7, trials: 20)
        #expect(abs(interval.low - 0.1812) < 0.001)
        #expect(abs(interval.high - 0.5671) < 0.001)
        #expect(Statistics.wilson(successes: 0, trials: 10).low == 0)
        #expect(abs(Statistics.wilson(successes: 10, trials: 10).high - 1) < 1e-12)
    }

    @Test func exactMcNemar() {
        #expect(Statistics.mcnemarExact(b: 0, c: 0) == 1)
        #expect(abs(Statistics.mcnemarExact(b: 2, c: 0) - 0.5) < 1e-12)
        #expect(abs(Statistics.mcnemarExact(b: 10, c: 2) - 158.0 / 4096) < 1e-12)
        #expect(Statistics.mcnemarExact(b: 5, c: 5) == 1)
        #expect(Statistics.mcnemarExact(b: 2, c: 10) == Statistics.mcnemarExact(b: 10, c: 2))
    }

    @Test func reportPairsItemsAndDrawsTheChart() {
        let records = [
            EvalRecord(id: "1", strategy: "cot", correct: false, extracted: nil, predictedN: 10, predictedMs: 1000, steps: 0),
            EvalRecord(id: "1", strategy: "self-anchor", correct: true, extracted: "1", predictedN: 20, predictedMs: 1000, steps: 2),
            EvalRecord(id: "2", strategy: "cot", correct: true, extracted: "2", predictedN: 10, predictedMs: 1000, steps: 0),
            EvalRecord(id: "2", strategy: "self-anchor", correct: true, extracted: "2", predictedN: 20, predictedMs: 1000, steps: 4),
        ]
        let summaries = Report.summarize(records, strategies: ["cot", "self-anchor"])
        #expect(summaries[1].accuracy == 1 && summaries[0].accuracy == 0.5)
        #expect(summaries[1].tokensPerSecond == 20 && summaries[1].meanSteps == 3)
        let comparisons = Report.compare(records, target: "self-anchor", baselines: ["cot", "self-anchor"])
        #expect(comparisons == [PairedComparison(baseline: "cot", items: 2, onlyTarget: 1, onlyBaseline: 0, pValue: 1)])
        let svg = Report.svg(summaries, title: "a <b> & c")
        #expect(svg.hasPrefix("<svg") && svg.contains("a &lt;b&gt; &amp; c") && svg.contains("n = 2"))
        #expect(Report.table(summaries, comparisons, target: "self-anchor").contains("50.0%"))
    }
}

@Suite struct ConstantBaselineTests {
    func item(_ id: String, _ reference: String, _ task: TaskType) -> EvalItem {
        EvalItem(id: id, question: "q", reference: reference, task: task)
    }

    @Test func theMostCommonAnswerScoresItsShareOnTheSameItems() throws {
        let items = [item("1", "no", .yesno), item("2", "yes", .yesno), item("3", "no", .yesno), item("4", "No", .yesno)]
        let constant = try #require(ConstantBaseline(items: items))
        #expect(constant.answer == "no")
        #expect(constant.accuracy(on: ["1", "2", "3", "4"]) == 0.75)
        #expect(constant.accuracy(on: ["1", "2"]) == 0.5, "only the items a row answered")
        let records = [
            EvalRecord(id: "1", strategy: "cot", correct: true, extracted: "no", predictedN: 1, predictedMs: 1, steps: 0),
            EvalRecord(id: "2", strategy: "cot", correct: false, extracted: "no", predictedN: 1, predictedMs: 1, steps: 0),
        ]
        let summaries = Report.summarize(records, strategies: ["cot"], constant: constant)
        #expect(summaries[0].constantAccuracy == 0.5)
        #expect(Report.table(summaries, [], target: "cot", constant: constant).contains("always no"))
    }

    @Test func choicesTieBreakByFirstSeenAndNumbersHaveNone() {
        let choices = [item("1", "B", .choice), item("2", "A", .choice), item("3", "A", .choice), item("4", "B", .choice)]
        #expect(ConstantBaseline(items: choices)?.answer == "B")
        #expect(ConstantBaseline(items: [item("1", "18", .number)]) == nil)
        #expect(ConstantBaseline(items: [item("1", "yes", .yesno), item("2", "18", .number)]) == nil)
    }
}

@Suite struct EvalRunnerTests {
    @Test func resumesWhereTheLastRunStopped() throws {
        LlamaBackend.initialise(logLevel: .error)
        var options = Engine.defaultContextOptions
        options.adaptiveThreads = false
        options.contextSize = 1024
        let engine = try Engine(model: LlamaModel(path: ModelCatalog.path(for: "test")), options: options)
        let items = try DatasetLoader.load(path: try temporaryFile([
            #"{"id": "strategyqa-0", "question": "Is it common to see frost during some college commencements?", "answer": "Yes"}"#,
            #"{"id": "strategyqa-1", "question": "Hydrogen's atomic number squared exceeds number of Spice Girls?", "answer": "No"}"#,
            #"{"id": "strategyqa-2", "question": "Would a pear sink in water?", "answer": "No"}"#,
        ]), task: nil)
        let directory = "/tmp/selfanchor-eval-resume-\(getpid())"
        let configure: (inout SolveRequest) -> Void = { $0.maxTokens = 8 }
        let columns = [EvalColumn(.plain, configure: configure), EvalColumn(.cot, configure: configure)]
        let first = EvalRunner(engine: engine, items: Array(items.prefix(2)), columns: columns, directory: directory)
        var calls: [Int] = []
        let firstRecords = try first.run(cancellation: CancellationFlag()) { done, _, _ in calls.append(done) }
        #expect(firstRecords.count == 4)
        #expect(calls == [0, 1, 2, 3, 4])
        // A half-written line from a killed run is ignored.
        let file = try AppendFile(path: first.resultsPath)
        try file.append(#"{"id":"strategyqa-2","strat"#)
        let second = EvalRunner(engine: engine, items: Array(items.prefix(3)), columns: columns, directory: directory)
        var resumedCount = -1
        var progress: [Int] = []
        let records = try second.run(cancellation: CancellationFlag()) { done, _, resumed in
            progress.append(done)
            resumedCount = resumed
        }
        #expect(resumedCount == 4)
        #expect(progress == [4, 5, 6])
        #expect(records.count == 6)
        #expect(records.map(\.id) == ["strategyqa-0", "strategyqa-0", "strategyqa-1", "strategyqa-1", "strategyqa-2", "strategyqa-2"])
        let lines = try readText(second.resultsPath).split(separator: "\n")
        #expect(lines.count == 7)  // six records and the ignored fragment
    }

    @Test func solvesSeveralItemsAtOnce() throws {
        LlamaBackend.initialise(logLevel: .error)
        var options = Engine.defaultContextOptions
        options.adaptiveThreads = false
        options.contextSize = 1024
        let engine = try Engine(model: LlamaModel(path: ModelCatalog.path(for: "test")), options: options, parallel: 3)
        let items = try DatasetLoader.load(path: try temporaryFile([
            #"{"id": "a", "question": "What is 2 + 3?", "answer": "5"}"#,
            #"{"id": "b", "question": "What is 4 * 6?", "answer": "24"}"#,
            #"{"id": "c", "question": "What is 10 - 7?", "answer": "3"}"#,
        ]), task: nil)
        let directory = "/tmp/selfanchor-eval-parallel-\(getpid())"
        let columns = [EvalColumn(.plain) { $0.maxTokens = 12 }, EvalColumn(.cot) { $0.maxTokens = 12 }]
        let runner = EvalRunner(engine: engine, items: items, columns: columns, directory: directory)
        var progress: [Int] = []
        let records = try runner.run(parallel: 3, cancellation: CancellationFlag()) { done, _, _ in progress.append(done) }
        #expect(progress == [0, 1, 2, 3, 4, 5, 6])
        #expect(records.map(\.id) == ["a", "a", "b", "b", "c", "c"], "the table is in item order whatever order they finished in")
        let lines = try readText(runner.resultsPath).split(separator: "\n")
        let keys = Set(lines.compactMap { line -> String? in
            guard let value = try? JSONValue.parse(String(line)), let id = value["id"]?.stringValue,
                  let strategy = value["strategy"]?.stringValue else { return nil }
            return id + "/" + strategy
        })
        #expect(lines.count == 6 && keys.count == 6, "one whole line per (item, strategy)")
        #expect(Double(engine.batchedSubmissions) / Double(engine.batchedDecodes) > 1.3,
                "the solves decoded together (\(engine.batchedSubmissions) submissions in \(engine.batchedDecodes) decodes)")
    }
}
