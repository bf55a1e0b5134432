import AttentionAnalysis
import JSON
import JSONRPC
import SelfAnchor

/// `analyze` params: the text to read attention over, and the analysis settings.
///
/// The text is one of: `text` alone (raw, no template), `text` with `prompt` (raw prompt, not scored),
/// `text` with `question` (a chat: the question as the user turn, `text` as the assistant's), or
/// `result` (a finished solve: the daemon's `solve` result, `selfanchor solve --save`'s file, or an
/// eval `results.jsonl` line; its prompt is rebuilt as its strategy built it).
public struct AnalyzeParams: Sendable {
    public var request: AnalyzeRequest

    public static let optionNames: Set<String> = [
        "layers", "layerCount", "waadWindow", "faiWindow", "localFraction", "globalFraction", "preplanFraction",
        "anchorFraction", "gammaAmp", "tauWaadQuantile", "tauDeltaQuantile", "alpha", "lookback",
    ]

    public init(_ params: JSONValue?) throws(ResponseError) {
        let reader = try ParamsReader(params)
        try reader.rejectUnknown(["text", "prompt", "question", "result", "task", "options"])
        let text = try reader.string("text")
        let prompt = try reader.string("prompt")
        let question = try reader.string("question")
        let source: AnalyzeRequest.Source
        if reader.object["result"] != nil, reader.object["result"] != .null {
            for other in ["text", "prompt", "question"] where reader.object[other] != nil {
                throw ParamsReader.invalid("params.\(other)", "give either result or text (with prompt or question), not both")
            }
            source = try Self.solveSource(reader.object["result"]!, path: "params.result",
                                          task: try reader.choice("task", as: TaskType.self))
        } else {
            guard let text else { throw ParamsReader.invalid("params.text", "required (or params.result)") }
            if prompt != nil && question != nil {
                throw ParamsReader.invalid("params.question", "give either prompt or question, not both")
            }
            if let question {
                source = .conversation(question: question, response: text)
            } else {
                source = .text(prompt: prompt ?? "", response: text)
            }
        }
        if text?.isEmpty == true { throw ParamsReader.invalid("params.text", "must not be empty") }
        request = AnalyzeRequest(source: source, options: try Self.options(try reader.nested("options")))
    }

    /// A solve result as the prompt-and-response source; an eval line's `result` member is looked into.
    static func solveSource(_ value: JSONValue, path: String, task override: TaskType?) throws(ResponseError)
        -> AnalyzeRequest.Source
    {
        var reader = try ParamsReader(value, path: path)
        if reader.object["text"] == nil, let inner = reader.object["result"], inner.objectValue != nil {
            reader = try ParamsReader(inner, path: path + ".result")
        }
        let text = try reader.string("text", required: true)!
        if text.isEmpty { throw ParamsReader.invalid("\(reader.path).text", "must not be empty") }
        let question = try reader.string("question", required: true, nonEmpty: true)!
        let strategyName = try reader.string("strategy") ?? Strategy.selfAnchor.rawValue
        guard let strategy = Strategy(rawValue: strategyName) else {
            throw ParamsReader.invalid("\(reader.path).strategy",
                                       "must be one of \(Strategy.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(strategyName)\"")
        }
        var task = override
        if task == nil, let answer = reader.object["answer"], answer != .null {
            task = try ParamsReader(answer, path: reader.path + ".answer").choice("task", as: TaskType.self)
        }
        if task == nil { task = try reader.choice("task", as: TaskType.self) }
        // Results saved before the upfront layout existed have no `planning`: they were interleaved.
        let planning = try reader.choice("planning", as: Planning.self) ?? .interleaved
        return .solve(strategy: strategy, question: question, task: task ?? .number, text: text, planning: planning)
    }

    static func options(_ reader: ParamsReader) throws(ResponseError) -> AttentionAnalysisOptions {
        try reader.rejectUnknown(optionNames)
        var options = AttentionAnalysisOptions()
        if let list = try reader.array("layers") {
            var layers: [Int] = []
            for (index, element) in list.enumerated() {
                guard let layer = element.integerValue, let value = Int(exactly: layer), value >= 0, value < 10_000 else {
                    throw ParamsReader.invalid("params.options.layers[\(index)]", "a layer index (an integer ≥ 0)", got: element)
                }
                layers.append(value)
            }
            if layers.isEmpty { throw ParamsReader.invalid("params.options.layers", "give at least one layer") }
            options.layers = layers
        }
        options.layerCount = try reader.integer("layerCount", in: 1...256) ?? options.layerCount
        options.waadWindow = try reader.integer("waadWindow", in: 1...10_000) ?? options.waadWindow
        if let window = try reader.array("faiWindow") {
            guard window.count == 2, let low = window[0].integerValue, let high = window[1].integerValue,
                  low >= 1, high >= low, high <= 1_000_000
            else {
                throw ParamsReader.invalid("params.options.faiWindow", "[start, end] with 1 ≤ start ≤ end (tokens after s)")
            }
            options.faiWindowStart = Int(low)
            options.faiWindowEnd = Int(high)
        }
        options.localFraction = try reader.double("localFraction", in: 0...1) ?? options.localFraction
        options.globalFraction = try reader.double("globalFraction", in: 0...1) ?? options.globalFraction
        options.preplanFraction = try reader.double("preplanFraction", in: 0...1) ?? options.preplanFraction
        options.anchorFraction = try reader.double("anchorFraction", in: 0...1) ?? options.anchorFraction
        options.gammaAmp = try reader.double("gammaAmp", in: 1...100) ?? options.gammaAmp
        options.tauWaadQuantile = try reader.double("tauWaadQuantile", in: 0...1) ?? options.tauWaadQuantile
        options.tauDeltaQuantile = try reader.double("tauDeltaQuantile", in: 0...1) ?? options.tauDeltaQuantile
        options.alpha = try reader.double("alpha", in: 0...1) ?? options.alpha
        options.lookback = try reader.integer("lookback", in: 1...100) ?? options.lookback
        return options
    }
}
