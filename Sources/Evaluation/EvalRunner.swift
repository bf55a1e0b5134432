import JSON
import Llama
import SelfAnchor

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
}

/// Runs every strategy on every item with one loaded engine, several at once, appending one JSON line
/// per (item, strategy) to `<out>/results.jsonl` as soon as it is done (in the order they finish), so a
/// rerun resumes where the last one stopped (a half-written last line is ignored and overwritten).
public final class EvalRunner {
    public let engine: Engine
    public let items: [EvalItem]
    public let strategies: [Strategy]
    public let directory: String
    private let configure: (inout SolveRequest) -> Void

    public var resultsPath: String { directory + "/results.jsonl" }

    public init(engine: Engine, items: [EvalItem], strategies: [Strategy], directory: String,
                configure: @escaping (inout SolveRequest) -> Void)
    {
        self.engine = engine
        self.items = items
        self.strategies = strategies
        self.directory = directory
        self.configure = configure
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
    public func run(parallel: Int = 1, cancellation: CancellationFlag, progress: (Int, Int, Int) -> Void) throws
        -> [EvalRecord]
    {
        try makeDirectory(directory)
        let existing = try existingRecords()
        let file = try AppendFile(path: resultsPath)
        let total = items.count * strategies.count
        let work = items.flatMap { item in
            strategies.filter { existing[Self.key(item.id, $0.rawValue)] == nil }.map { (item: item, strategy: $0) }
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
                    guard let line = try solve(work[index].item, work[index].strategy, cancellation: cancellation) else { return }
                    try lock.withLock {
                        try file.append(line.serialized() + "\n")
                        let record = EvalRecord(line)!
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

    /// One item with one strategy, as its results.jsonl line; nil when cancelled.
    private func solve(_ item: EvalItem, _ strategy: Strategy, cancellation: CancellationFlag) throws -> JSONValue? {
        var request = SolveRequest(question: item.question, strategy: strategy, task: item.task)
        configure(&request)
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
        return [
            "id": .string(item.id), "strategy": .string(strategy.rawValue), "task": .string(item.task.rawValue),
            "question": .string(item.question), "reference": .string(item.reference),
            "extracted": result.answer?.extracted.map(JSONValue.string) ?? .null, "correct": .bool(correct),
            "steps_n": .int(result.steps.count), "result": result.jsonValue,
        ]
    }

    private func ordered(_ records: [String: EvalRecord]) -> [EvalRecord] {
        items.flatMap { item in strategies.compactMap { records[Self.key(item.id, $0.rawValue)] } }
    }
}

extension EvalRecord {
    init?(_ value: JSONValue) {
        guard let id = value["id"]?.stringValue, let strategy = value["strategy"]?.stringValue,
              let correct = value["correct"]?.boolValue else { return nil }
        let timings = value["result"]?["timings"]
        self.init(id: id, strategy: strategy, correct: correct, extracted: value["extracted"]?.stringValue,
                  predictedN: Int(timings?["predicted_n"]?.integerValue ?? 0), predictedMs: timings?["predicted_ms"]?.doubleValue ?? 0,
                  steps: Int(value["steps_n"]?.integerValue ?? 0))
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

/// The contents of a file as UTF-8 text.
public func readText(_ path: String) throws -> String {
    guard let file = fopen(path, "rb") else { throw DatasetError(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count == 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes a whole file (atomically: a temporary, then rename).
public func writeText(_ text: String, to path: String) throws {
    let temporary = path + ".tmp"
    let file = try AppendFile(path: temporary)
    _ = ftruncate(file.descriptor, 0)
    do { try file.append(text) } catch {
        unlink(temporary)
        throw error
    }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw DatasetError(description: "cannot write \(path): \(reason)")
    }
}

func makeDirectory(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        prefix += component + "/"
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw DatasetError(description: "cannot create \(prefix): \(String(cString: strerror(errno)))")
        }
    }
}
