import JSON
import JSONRPC

/// `analyze` params: the text to read attention over, and the analysis settings.
///
/// The text is one of: `text` alone (raw, no template), `text` with `prompt` (raw prompt, not scored),
/// `text` with `question` (a chat: the question as the user turn, `text` as the assistant's), or
/// `result` (a finished solve: the daemon's `solve` result, `selfanchor solve --save`'s file, or an
/// eval `results.jsonl` line; its prompt is rebuilt as its strategy built it).
public struct AnalyzeParams: Sendable, Equatable {
    /// Where the prompt and response come from.
    public enum Source: Sendable, Equatable {
        case text(prompt: String, response: String)
        case conversation(question: String, response: String)
        case solve(strategy: StrategyName, question: String, task: TaskName, text: String, planning: PlanningName)
    }

    public var source: Source
    public var options: AnalyzeOptions

    public init(source: Source, options: AnalyzeOptions = AnalyzeOptions()) {
        self.source = source
        self.options = options
    }

    public init(_ params: JSONValue?) throws(ResponseError) {
        let reader = try ParamsReader(params)
        try reader.rejectUnknown(["text", "prompt", "question", "result", "task", "options"])
        let text = try reader.string("text")
        let prompt = try reader.string("prompt")
        let question = try reader.string("question")
        if reader.object["result"] != nil, reader.object["result"] != .null {
            for other in ["text", "prompt", "question"] where reader.object[other] != nil {
                throw ParamsReader.invalid("params.\(other)", "give either result or text (with prompt or question), not both")
            }
            source = try Self.solveSource(reader.object["result"]!, path: "params.result",
                                          task: try reader.choice("task", as: TaskName.self))
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
        options = try AnalyzeOptions(reader.nested("options"))
    }

    /// A solve result as the prompt-and-response source; an eval line's `result` member is looked into.
    static func solveSource(_ value: JSONValue, path: String, task override: TaskName?) throws(ResponseError) -> Source {
        var reader = try ParamsReader(value, path: path)
        if reader.object["text"] == nil, let inner = reader.object["result"], inner.objectValue != nil {
            reader = try ParamsReader(inner, path: path + ".result")
        }
        let text = try reader.string("text", required: true)!
        if text.isEmpty { throw ParamsReader.invalid("\(reader.path).text", "must not be empty") }
        let question = try reader.string("question", required: true, nonEmpty: true)!
        let strategy = try reader.choice("strategy", as: StrategyName.self) ?? .selfAnchor
        var task = override
        if task == nil, let answer = reader.object["answer"], answer != .null {
            task = try ParamsReader(answer, path: reader.path + ".answer").choice("task", as: TaskName.self)
        }
        if task == nil { task = try reader.choice("task", as: TaskName.self) }
        // Results saved before the upfront layout existed have no `planning`: they were interleaved.
        let planning = try reader.choice("planning", as: PlanningName.self) ?? .interleaved
        return .solve(strategy: strategy, question: question, task: task ?? .number, text: text, planning: planning)
    }
}

/// The analysis settings a request may set; unset ones keep the analyzer's defaults.
public struct AnalyzeOptions: Sendable, Equatable {
    public var layers: [Int]?
    public var layerCount: Int?
    public var waadWindow: Int?
    public var faiWindow: (start: Int, end: Int)?
    public var localFraction: Double?
    public var globalFraction: Double?
    public var preplanFraction: Double?
    public var anchorFraction: Double?
    public var gammaAmp: Double?
    public var tauWaadQuantile: Double?
    public var tauDeltaQuantile: Double?
    public var alpha: Double?
    public var lookback: Int?

    public static let keys: Set<String> = [
        "layers", "layerCount", "waadWindow", "faiWindow", "localFraction", "globalFraction", "preplanFraction",
        "anchorFraction", "gammaAmp", "tauWaadQuantile", "tauDeltaQuantile", "alpha", "lookback",
    ]

    public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.layers == b.layers && a.layerCount == b.layerCount && a.waadWindow == b.waadWindow
            && a.faiWindow?.start == b.faiWindow?.start && a.faiWindow?.end == b.faiWindow?.end
            && a.localFraction == b.localFraction && a.globalFraction == b.globalFraction
            && a.preplanFraction == b.preplanFraction && a.anchorFraction == b.anchorFraction && a.gammaAmp == b.gammaAmp
            && a.tauWaadQuantile == b.tauWaadQuantile && a.tauDeltaQuantile == b.tauDeltaQuantile && a.alpha == b.alpha
            && a.lookback == b.lookback
    }

    public init(_ reader: ParamsReader) throws(ResponseError) {
        try reader.rejectUnknown(Self.keys)
        if let list = try reader.array("layers") {
            var layers: [Int] = []
            for (index, element) in list.enumerated() {
                guard let layer = element.integerValue, let value = Int(exactly: layer), value >= 0, value < 10_000 else {
                    throw ParamsReader.invalid("\(reader.path).layers[\(index)]", "a layer index (an integer ≥ 0)", got: element)
                }
                layers.append(value)
            }
            if layers.isEmpty { throw ParamsReader.invalid("\(reader.path).layers", "give at least one layer") }
            self.layers = layers
        }
        layerCount = try reader.integer("layerCount", in: 1...256)
        waadWindow = try reader.integer("waadWindow", in: 1...10_000)
        if let window = try reader.array("faiWindow") {
            guard window.count == 2, let low = window[0].integerValue, let high = window[1].integerValue,
                  low >= 1, high >= low, high <= 1_000_000
            else {
                throw ParamsReader.invalid("\(reader.path).faiWindow", "[start, end] with 1 ≤ start ≤ end (tokens after s)")
            }
            faiWindow = (Int(low), Int(high))
        }
        localFraction = try reader.double("localFraction", in: 0...1)
        globalFraction = try reader.double("globalFraction", in: 0...1)
        preplanFraction = try reader.double("preplanFraction", in: 0...1)
        anchorFraction = try reader.double("anchorFraction", in: 0...1)
        gammaAmp = try reader.double("gammaAmp", in: 1...100)
        tauWaadQuantile = try reader.double("tauWaadQuantile", in: 0...1)
        tauDeltaQuantile = try reader.double("tauDeltaQuantile", in: 0...1)
        alpha = try reader.double("alpha", in: 0...1)
        lookback = try reader.integer("lookback", in: 1...100)
    }
}

/// One response token of an analysis.
public struct AnalyzedTokenMessage: Sendable, Equatable {
    public var index: Int
    public var token: Int
    public var text: String
    public var waad: Double
    public var fai: Double?
    public var delta: Double
    public var preplan: Bool
    public var anchor: Bool
    public var gammaLocalChunk: Double
    public var gammaGlobalAnchor: Double
    public var gammaCoupled: Double

    public init(index: Int, token: Int, text: String, waad: Double, fai: Double?, delta: Double, preplan: Bool, anchor: Bool,
                gammaLocalChunk: Double, gammaGlobalAnchor: Double, gammaCoupled: Double)
    {
        self.index = index
        self.token = token
        self.text = text
        self.waad = waad
        self.fai = fai
        self.delta = delta
        self.preplan = preplan
        self.anchor = anchor
        self.gammaLocalChunk = gammaLocalChunk
        self.gammaGlobalAnchor = gammaGlobalAnchor
        self.gammaCoupled = gammaCoupled
    }

    public var jsonValue: JSONValue {
        [
            "index": .int(index), "token": .int(token), "text": .string(text),
            "waad": .double(waad), "fai": fai.map { .double($0) } ?? .null, "delta": .double(delta),
            "preplan": .bool(preplan), "anchor": .bool(anchor),
            "gamma": ["localChunk": .double(gammaLocalChunk), "globalAnchor": .double(gammaGlobalAnchor),
                      "coupled": .double(gammaCoupled)],
        ]
    }
}

/// The `analyze` result: the settings used, the head split, thresholds, per-token records and cost.
public struct AnalysisResultMessage: Sendable, Equatable {
    public var model: String
    /// The settings after defaults, under the names `options` takes (so they can be sent back as they are).
    public var layers: [Int]
    public var localFraction, globalFraction: Double
    public var waadWindow: Int
    public var faiWindow: (start: Int, end: Int)
    public var preplanFraction, anchorFraction, gammaAmp, tauWaadQuantile, tauDeltaQuantile, alpha: Double
    public var lookback: Int
    public var headsPerLayer: Int
    public var kvHeadsPerLayer: Int
    public var localHeads: [String]
    public var globalHeads: [String]
    public var tauWaad: Double
    public var tauDelta: Double
    public var promptTokens: Int
    public var tokens: [AnalyzedTokenMessage]
    public var elapsedMs: Double
    public var peakRssMb: Double?

    public init(model: String, layers: [Int], localFraction: Double, globalFraction: Double, waadWindow: Int,
                faiWindow: (start: Int, end: Int), preplanFraction: Double, anchorFraction: Double, gammaAmp: Double,
                tauWaadQuantile: Double, tauDeltaQuantile: Double, alpha: Double, lookback: Int, headsPerLayer: Int,
                kvHeadsPerLayer: Int, localHeads: [String], globalHeads: [String], tauWaad: Double, tauDelta: Double,
                promptTokens: Int, tokens: [AnalyzedTokenMessage], elapsedMs: Double, peakRssMb: Double?)
    {
        self.model = model
        self.layers = layers
        self.localFraction = localFraction
        self.globalFraction = globalFraction
        self.waadWindow = waadWindow
        self.faiWindow = faiWindow
        self.preplanFraction = preplanFraction
        self.anchorFraction = anchorFraction
        self.gammaAmp = gammaAmp
        self.tauWaadQuantile = tauWaadQuantile
        self.tauDeltaQuantile = tauDeltaQuantile
        self.alpha = alpha
        self.lookback = lookback
        self.headsPerLayer = headsPerLayer
        self.kvHeadsPerLayer = kvHeadsPerLayer
        self.localHeads = localHeads
        self.globalHeads = globalHeads
        self.tauWaad = tauWaad
        self.tauDelta = tauDelta
        self.promptTokens = promptTokens
        self.tokens = tokens
        self.elapsedMs = elapsedMs
        self.peakRssMb = peakRssMb
    }

    public static func == (a: Self, b: Self) -> Bool { a.jsonValue == b.jsonValue }

    public var optionsValue: JSONValue {
        [
            "layers": .array(layers.map { .int($0) }), "localFraction": .double(localFraction),
            "globalFraction": .double(globalFraction), "waadWindow": .int(waadWindow),
            "faiWindow": [.int(faiWindow.start), .int(faiWindow.end)], "preplanFraction": .double(preplanFraction),
            "anchorFraction": .double(anchorFraction), "gammaAmp": .double(gammaAmp),
            "tauWaadQuantile": .double(tauWaadQuantile), "tauDeltaQuantile": .double(tauDeltaQuantile),
            "alpha": .double(alpha), "lookback": .int(lookback),
        ]
    }

    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "model": .string(model), "options": optionsValue,
            "headsPerLayer": .int(headsPerLayer), "kvHeadsPerLayer": .int(kvHeadsPerLayer),
            "localHeads": .array(localHeads.map { .string($0) }), "globalHeads": .array(globalHeads.map { .string($0) }),
            "tauWaad": .double(tauWaad), "tauDelta": .double(tauDelta),
            "promptTokens": .int(promptTokens), "responseTokens": .int(tokens.count),
            "preplanCount": .int(tokens.filter(\.preplan).count), "anchorCount": .int(tokens.filter(\.anchor).count),
            "tokens": .array(tokens.map(\.jsonValue)), "elapsedMs": .double(elapsedMs),
        ]
        if let peakRssMb { object["peakRssMb"] = .double(peakRssMb) }
        return .object(object)
    }
}
