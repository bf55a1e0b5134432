import JSON
import SelfAnchor
import TextFiles

/// `--shard K/N`: a deterministic 1/N of a benchmark's items, so that N machines (a Slurm array, a
/// Kubernetes indexed Job, GNU parallel over ssh) each run one shard and `eval merge` joins them.
///
/// An item belongs to shard `hash(id) mod N + 1` (FNV-1a over the id's UTF-8), so the split is the same
/// for every strategy and variant, every run, and every machine, whatever order the file lists them in.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    /// 1-based.
    public let index: Int
    public let count: Int

    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, (1...count).contains(index)
        else { return nil }
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    public func contains(_ id: String) -> Bool { Int(Self.hash(id) % UInt64(count)) == index - 1 }

    static func hash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// What an eval run was, written to `<out>/run.json` so that a merge knows its columns, data and shard.
public struct EvalRunInfo: Sendable, Equatable {
    public var data: String
    public var model: String
    /// Column names in order, with a variant's definition (nil for a strategy under its own name).
    public var columns: [(name: String, definition: String?)]
    public var shard: Shard?
    /// Items in the whole run (before sharding).
    public var itemCount: Int

    public init(data: String, model: String, columns: [(name: String, definition: String?)], shard: Shard?, itemCount: Int) {
        self.data = data
        self.model = model
        self.columns = columns
        self.shard = shard
        self.itemCount = itemCount
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.data == b.data && a.model == b.model && a.shard == b.shard && a.itemCount == b.itemCount
            && a.columns.map(\.name) == b.columns.map(\.name) && a.columns.map(\.definition) == b.columns.map(\.definition)
    }

    public static func path(in directory: String) -> String { directory + "/run.json" }

    public var jsonValue: JSONValue {
        [
            "data": .string(data), "model": .string(model),
            "columns": .array(columns.map { column in
                ["name": .string(column.name), "definition": column.definition.map(JSONValue.string) ?? .null]
            }),
            "shard": shard.map { .string($0.description) } ?? .null, "itemCount": .int(itemCount),
        ]
    }

    public init(_ value: JSONValue) throws {
        guard let data = value["data"]?.stringValue, let model = value["model"]?.stringValue,
              let columns = value["columns"]?.arrayValue, let itemCount = value["itemCount"]?.integerValue
        else { throw DatasetError(description: "run.json: missing data, model, columns or itemCount") }
        self.data = data
        self.model = model
        self.columns = try columns.map { column in
            guard let name = column["name"]?.stringValue else { throw DatasetError(description: "run.json: a column without a name") }
            return (name, column["definition"]?.stringValue)
        }
        if let text = value["shard"]?.stringValue {
            guard let shard = Shard(parsing: text) else { throw DatasetError(description: "run.json: bad shard \(text)") }
            self.shard = shard
        }
        self.itemCount = Int(itemCount)
    }
}

/// `selfanchor eval merge`: the union of several runs of the same benchmark (shards, partial runs, or
/// runs of other columns on the same items, joined into one paired table), as one results file and one
/// report; with `rescore`, every answer read again from its stored text by this build's extractor.
public enum EvalMerge {
    public struct Merged {
        public var info: EvalRunInfo
        /// Every results line, once per (item, column), in the order read.
        public var lines: [JSONValue]
        public var records: [EvalRecord]
        public var items: [EvalItem]
        /// The shards found (empty for unsharded runs).
        public var shards: [Shard]
    }

    public static func merge(_ directories: [String], rescore: Bool = false) throws -> Merged {
        guard !directories.isEmpty else { throw DatasetError(description: "eval merge: no run directories given") }
        var info: EvalRunInfo?
        var shards: [Shard] = []
        var lines: [JSONValue] = []
        var records: [EvalRecord] = []
        var items: [EvalItem] = []
        var seen = Set<String>()
        var seenItems = Set<String>()
        for directory in directories {
            let runInfo: EvalRunInfo
            do {
                runInfo = try EvalRunInfo(JSONValue.parse(readText(EvalRunInfo.path(in: directory))))
            } catch {
                throw DatasetError(description: "\(directory): not an eval output directory (\(error))")
            }
            if var first = info {
                guard first.data == runInfo.data else {
                    throw DatasetError(description: "\(directory) ran on \(runInfo.data); \(directories[0]) ran on \(first.data): "
                        + "only runs of the same data merge")
                }
                // Columns of other runs join the table; one name must mean one definition.
                for column in runInfo.columns {
                    if let known = first.columns.first(where: { $0.name == column.name }) {
                        guard known.definition == column.definition else {
                            throw DatasetError(description: "\(directory) defines '\(column.name)' as "
                                + (column.definition.map { "'\($0)'" } ?? "the strategy \(column.name)") + " but an earlier run as "
                                + (known.definition.map { "'\($0)'" } ?? "the strategy \(column.name)") + ": rename one of them")
                        }
                    } else {
                        first.columns.append(column)
                    }
                }
                info = first
                guard first.shard?.count == runInfo.shard?.count else {
                    throw DatasetError(description: "\(directory) is shard \(runInfo.shard?.description ?? "none") but \(directories[0]) is "
                        + "\(first.shard?.description ?? "unsharded"): shards of different splits do not merge")
                }
            } else {
                info = runInfo
            }
            if let shard = runInfo.shard {
                guard !shards.contains(shard) else { throw DatasetError(description: "\(directory): shard \(shard) is given twice") }
                shards.append(shard)
            }
            guard let text = try? readText(directory + "/results.jsonl") else { continue }
            for line in text.split(separator: "\n") {
                guard var value = try? JSONValue.parse(String(line)) else { continue }
                if rescore { value = rescored(value) }
                guard let record = EvalRecord(value) else { continue }
                guard seen.insert(EvalRunner.key(record.id, record.strategy)).inserted else { continue }
                lines.append(value)
                records.append(record)
                if seenItems.insert(record.id).inserted, let question = value["question"]?.stringValue,
                   let reference = value["reference"]?.stringValue,
                   let task = value["task"]?.stringValue.flatMap(TaskType.init(rawValue:))
                {
                    items.append(EvalItem(id: record.id, question: question, reference: reference, task: task))
                }
            }
        }
        var merged = info!
        merged.shard = nil
        return Merged(info: merged, lines: lines, records: records, items: items, shards: shards.sorted { $0.index < $1.index })
    }

    /// A results line with its answer read again from the stored transcript (`result.text`) by this
    /// build's extractor, and `correct` decided again; a line without a transcript stays as it is.
    static func rescored(_ line: JSONValue) -> JSONValue {
        guard var object = line.objectValue, let text = line["result"]?["text"]?.stringValue,
              let task = line["task"]?.stringValue.flatMap(TaskType.init(rawValue:)),
              let reference = line["reference"]?.stringValue
        else { return line }
        let extracted = AnswerExtractor.extract(text, task: task, question: line["question"]?.stringValue)
        object["extracted"] = extracted.map(JSONValue.string) ?? .null
        object["correct"] = .bool(AnswerExtractor.matches(extracted, reference: reference, task: task))
        if var result = line["result"]?.objectValue, var answer = result["answer"]?.objectValue {
            answer["extracted"] = extracted.map(JSONValue.string) ?? .null
            result["answer"] = .object(answer)
            object["result"] = .object(result)
        }
        return .object(object)
    }
}
