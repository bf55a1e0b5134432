import JSON
import Llama
import SelfAnchor
import SelfAnchorProtocol
import WireMapping
import TextFiles

#if canImport(Glibc)
    import Glibc
#endif

/// What the table needs from one (item, strategy) run; the full trace is in results.jsonl.
public struct EvalRecord: Sendable, Equatable {
    public var id: String
    public var strategy: String
    public var correct: Bool
    public var extracted: String?
    public var predictedN: Int
    public var predictedMs: Double
    public var steps: Int
    /// The variant definition the record was made under (nil: a strategy under its own name).
    public var variant: String? = nil
}

/// One column of an eval run: a strategy with its options, under the name its records carry as their
/// `strategy` (a strategy's own name, or a variant's such as `nosteer` for self-anchor with ω = 1), so
/// ablations run paired with the baselines, on the same items, in one run.
public struct EvalColumn: Sendable {
    public var name: String
    /// The request every item starts from: strategy and options set, question and task filled per item.
    public var template: SolveRequest
    /// A variant's definition as the user wrote it (`nosteer=self-anchor:omega=1`); nil for a strategy.
    /// Records carry it, and a resumed run refuses records made under another definition.
    public var definition: String?

    public init(name: String, template: SolveRequest, definition: String? = nil) {
        self.name = name
        self.template = template
        self.definition = definition
    }

    /// A strategy under its own name, its request set up by `configure`.
    public init(_ strategy: Strategy, configure: (inout SolveRequest) -> Void = { _ in }) {
        var template = SolveRequest(question: "", strategy: strategy)
        configure(&template)
        self.init(name: strategy.rawValue, template: template)
    }
}

/// Runs every column on every item with one loaded engine, several at once, appending one JSON line
/// per (item, column) to `<out>/results.jsonl` as soon as it is done (in the order they finish), so a
/// rerun resumes where the last one stopped (a half-written last line is ignored and overwritten).
public final class EvalRunner {
    public let engine: Engine
    public let items: [EvalItem]
    public let columns: [EvalColumn]
    public let directory: String

    public var resultsPath: String { directory + "/results.jsonl" }

    public init(engine: Engine, items: [EvalItem], columns: [EvalColumn], directory: String) {
        self.engine = engine
        self.items = items
        self.columns = columns
        self.directory = directory
    }

    /// Records already in the results file, keyed by item id and strategy.
    public func existingRecords() throws -> [String: EvalRecord] {
        guard let text = try? readText(resultsPath) else { return [:] }
        var records: [String: EvalRecord] = [:]
        for line in text.split(separator: "\n") {
            guard let value = try? JSONValue.parse(String(line)), let record = EvalRecord(value) else { continue }
            records[Self.key(record.id, record.strategy)] = record
        }
        return records
    }

    static func key(_ id: String, _ strategy: String) -> String { id + "\u{1F}" + strategy }

    /// Runs what is missing, `parallel` requests at once (batched by the engine; at most its slots);
    /// `progress(done, total, resumed)` after each record. Returns all records.
    public func run(parallel: Int = 1, cancellation: CancellationFlag, info: EvalRunInfo? = nil,
                    progress: (Int, Int, Int) -> Void) throws -> [EvalRecord]
    {
        try makeDirectory(directory)
        let existing = try existingRecords()
        for column in columns {
            guard let stale = existing.values.first(where: { $0.strategy == column.name && $0.variant != column.definition })
            else { continue }
            throw DatasetError(description: "\(resultsPath) has results for '\(column.name)' made as "
                + (stale.variant.map { "'\($0)'" } ?? "the strategy \(column.name)")
                + (column.definition.map { ", not '\($0)'" } ?? "") + ": use another --out or another name")
        }
        let file = try AppendFile(path: resultsPath)
        if let info { try writeText(info.jsonValue.serialized() + "\n", to: EvalRunInfo.path(in: directory)) }
        let total = items.count * columns.count
        let work = items.flatMap { item in
            columns.filter { existing[Self.key(item.id, $0.name)] == nil }.map { (item: item, column: $0) }
        }
        var state = (records: existing, next: 0, done: total - work.count, failure: nil as (any Error)?)
        let resumed = existing.count
        progress(state.done, total, resumed)
        let lock = ConditionLock()
        let workers = max(1, min(parallel, engine.parallel, work.count))
        runConcurrently(workers) { _ in
            while true {
                let index = lock.withLock { () -> Int? in
                    guard state.failure == nil, !cancellation.isCancelled, state.next < work.count else { return nil }
                    defer { state.next += 1 }
                    return state.next
                }
                guard let index else { return }
                do {
                    guard let (line, record) = try solve(work[index].item, work[index].column, cancellation: cancellation)
                    else { return }
                    try lock.withLock {
                        try file.append(line.serialized() + "\n")
                        state.records[Self.key(record.id, record.strategy)] = record
                        state.done += 1
                        progress(state.done, total, resumed)
                    }
                } catch {
                    lock.withLock { if state.failure == nil { state.failure = error } }
                    return
                }
            }
        }
        if let failure = state.failure { throw failure }
        return ordered(state.records)
    }

    /// One item with one column: its results.jsonl line and its record; nil when cancelled.
    private func solve(_ item: EvalItem, _ column: EvalColumn, cancellation: CancellationFlag) throws
        -> (line: JSONValue, record: EvalRecord)?
    {
        var request = column.template
        request.question = item.question
        request.task = item.task
        let result: SolveResult
        do {
            result = try engine.solve(request, cancellation: cancellation)
        } catch {
            // (Pattern catch clauses here crash Swift 6.3.1's SILGen: switch instead.)
            switch error {
            case .cancelled: return nil
            case .promptTooLong(let tokens, let capacity):
                throw DatasetError(description: "item \(item.id): the prompt needs \(tokens) tokens, the context holds \(capacity); use --context-size")
            default: throw DatasetError(description: "item \(item.id): \(error)")
            }
        }
        let correct = AnswerExtractor.matches(result.answer?.extracted, reference: item.reference, task: item.task)
        var line: JSONObject = ["id": .string(item.id), "strategy": .string(column.name)]
        if let definition = column.definition { line["variant"] = .string(definition) }
        line["task"] = .string(item.task.rawValue)
        line["question"] = .string(item.question)
        line["reference"] = .string(item.reference)
        line["extracted"] = result.answer?.extracted.map(JSONValue.string) ?? .null
        line["correct"] = .bool(correct)
        line["stepCount"] = .int(result.steps.count)
        line["result"] = SolveResultMessage(result).jsonValue
        let record = EvalRecord(id: item.id, strategy: column.name, correct: correct, extracted: result.answer?.extracted,
                                predictedN: result.timings.predictedN, predictedMs: result.timings.predictedMs,
                                steps: result.steps.count, variant: column.definition)
        return (.object(line), record)
    }

    private func ordered(_ records: [String: EvalRecord]) -> [EvalRecord] {
        items.flatMap { item in columns.compactMap { records[Self.key(item.id, $0.name)] } }
    }
}

extension EvalRecord {
    init?(_ value: JSONValue) {
        guard let id = value["id"]?.stringValue, let strategy = value["strategy"]?.stringValue,
              let correct = value["correct"]?.boolValue else { return nil }
        let timings = value["result"]?["timings"]
        self.init(id: id, strategy: strategy, correct: correct, extracted: value["extracted"]?.stringValue,
                  predictedN: Int(timings?["predicted_n"]?.integerValue ?? 0), predictedMs: timings?["predicted_ms"]?.doubleValue ?? 0,
                  steps: Int(value["stepCount"]?.integerValue ?? value["steps_n"]?.integerValue ?? 0),  // (steps_n: protocol 1)
                  variant: value["variant"]?.stringValue)
    }
}

// MARK: Files

/// A file opened for appending; each `append` is written through before it returns.
final class AppendFile {
    let descriptor: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else { throw DatasetError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
        // A run killed mid-line leaves a partial last line: start on a fresh one.
        if let text = try? readText(path), !text.isEmpty, !text.hasSuffix("\n") { try append("\n") }
    }

    deinit { close(descriptor) }

    func append(_ text: String) throws {
        let start = lseek(descriptor, 0, SEEK_END)
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                // A full disk fails mid-record: cut the file back, so no half-written line is left.
                if start >= 0 { _ = ftruncate(descriptor, start) }
                throw DatasetError(description: "cannot write \(path): \(reason)")
            }
            bytes = bytes.dropFirst(written)
        }
    }
}

