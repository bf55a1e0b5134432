import AttentionAnalysis
import Llama
import SelfAnchor
import SelfAnchorProtocol

// Between the protocol's wire shapes (SelfAnchorProtocol: no decoder types) and the decoder's own types
// (SelfAnchor, AttentionAnalysis: no JSON). The daemon, `selfanchor solve --json`, eval's records and the
// analyze command all write the wire shapes through here, so there is one mapping of each.

// MARK: Names

extension Strategy {
    public init(_ name: StrategyName) { self.init(rawValue: name.rawValue)! }
}

extension TaskType {
    public init(_ name: TaskName) { self.init(rawValue: name.rawValue)! }
}

extension Planning {
    public init(_ name: PlanningName) { self.init(rawValue: name.rawValue)! }
}

extension SteeringOptions.Mode {
    public init(_ name: OmegaModeName) { self.init(rawValue: name.rawValue)! }
}

extension SteeringOptions.MaskedPass {
    public init(_ name: MaskedPassName) { self.init(rawValue: name.rawValue)! }
}

// MARK: Requests

extension SolveRequest {
    /// The request a `solve` asks for.
    public init(_ params: SolveParams) {
        self.init(question: params.question, strategy: Strategy(params.strategy), task: TaskType(params.task))
        apply(params.options)
    }

    /// Sets what the options set; the rest keeps its value.
    public mutating func apply(_ options: SolveOptions) {
        if let omega = options.omega { steering.setOmega(omega) }
        if let value = options.planOmega { steering.planOmega = value }
        if let value = options.stepOmega { steering.stepOmega = value }
        if let value = options.answerOmega { steering.answerOmega = value }
        if let value = options.resultOmega { steering.resultOmega = value }
        if let value = options.omegaMode { steering.mode = SteeringOptions.Mode(value) }
        if let value = options.modulation { steering.modulation = value }
        if let value = options.referenceConfidence { steering.referenceConfidence = value }
        if let value = options.maxGain { steering.maximumGain = value }
        if let value = options.plausibility { steering.plausibility = value }
        sampling.set(temperature: options.temperature, topP: options.topP, topK: options.topK, seed: options.seed)
        if let value = options.maxTokens { maxTokens = value }
        if let value = options.maxSteps { maxSteps = value }
        if let value = options.anchors { anchors = value }
        if let value = options.placeholder { placeholder = value }
        if let value = options.anchorSpans { anchorSpans = value }
        if let value = options.skipMaskedAbove {
            // A threshold alone asks for the adaptive mode; `null` for the masked context on every token.
            steering.skipMaskedAbove = value
            steering.maskedPass = value == nil ? .every : .adaptive
        }
        if let value = options.maskedPass { steering.maskedPass = SteeringOptions.MaskedPass(value) }
        if let value = options.planning { planning = Planning(value) }
        if let value = options.calculator { calculator = value }
    }
}

extension SamplingOptions {
    /// Sets the sampling settings a request gives (solve's `options`, generate's params); the rest keep theirs.
    mutating func set(temperature: Double?, topP: Double?, topK: Int?, seed: Int?) {
        if let temperature { self.temperature = Float(temperature) }
        if let topP { self.topP = Float(topP) }
        if let topK { self.topK = Int32(topK) }
        if let seed { self.seed = UInt32(seed) }
    }
}

extension GenerateRequest {
    public init(_ params: GenerateParams) {
        self.init(messages: params.messages.map { ChatMessage(role: $0.role, content: $0.content) }, anchors: params.anchors)
        if let value = params.omega { omega = value }
        if let value = params.modulation { modulation = value }
        sampling.set(temperature: params.temperature, topP: params.topP, topK: params.topK, seed: params.seed)
        if let value = params.maxTokens { maxTokens = value }
        if let value = params.placeholder { placeholder = value }
    }
}

extension AnalyzeRequest {
    public init(_ params: AnalyzeParams) {
        let source: Source
        switch params.source {
        case .text(let prompt, let response): source = .text(prompt: prompt, response: response)
        case .conversation(let question, let response): source = .conversation(question: question, response: response)
        case .solve(let strategy, let question, let task, let text, let planning):
            source = .solve(strategy: Strategy(strategy), question: question, task: TaskType(task), text: text,
                            planning: Planning(planning))
        }
        self.init(source: source, options: AttentionAnalysisOptions(params.options))
    }
}

extension AttentionAnalysisOptions {
    public init(_ options: AnalyzeOptions) {
        self.init()
        if let value = options.layers { layers = value }
        if let value = options.layerCount { layerCount = value }
        if let value = options.waadWindow { waadWindow = value }
        if let window = options.faiWindow {
            faiWindowStart = window.start
            faiWindowEnd = window.end
        }
        if let value = options.localFraction { localFraction = value }
        if let value = options.globalFraction { globalFraction = value }
        if let value = options.preplanFraction { preplanFraction = value }
        if let value = options.anchorFraction { anchorFraction = value }
        if let value = options.gammaAmp { gammaAmp = value }
        if let value = options.tauWaadQuantile { tauWaadQuantile = value }
        if let value = options.tauDeltaQuantile { tauDeltaQuantile = value }
        if let value = options.alpha { alpha = value }
        if let value = options.lookback { lookback = value }
    }
}

// MARK: Results and events

extension LineMessage {
    public init(_ record: StepRecord) {
        self.init(index: record.index, text: record.text, omega: record.omega, confidence: record.confidence,
                  steeringConfidence: record.steeringConfidence, tokens: record.tokens, anchors: record.anchors)
    }
}

extension AnswerMessage {
    public init(_ answer: AnswerRecord) {
        self.init(text: answer.text, extracted: answer.extracted, task: answer.task.rawValue)
    }
}

extension TimingsMessage {
    public init(_ timings: Timings) {
        self.init()
        promptN = timings.promptN
        promptDecodedN = timings.promptDecodedN
        promptMs = timings.promptMs
        predictedN = timings.predictedN
        predictedMs = timings.predictedMs
        insertedN = timings.insertedN
        maskedN = timings.maskedN
        maskedSkippedN = timings.maskedSkippedN
        draftsN = timings.draftsN
        draftedN = timings.draftedN
        draftAcceptedN = timings.draftAcceptedN
        calculationsN = timings.calculationsN
        stopReason = timings.stopReason.rawValue
    }
}

extension SolveResultMessage {
    public init(_ result: SolveResult) {
        self.init(strategy: result.strategy, question: result.question, text: result.text,
                  steps: result.steps.map { (plan: $0.plan.map(LineMessage.init), reason: $0.reason.map(LineMessage.init)) },
                  answer: result.answer.map(AnswerMessage.init), timings: TimingsMessage(result.timings),
                  planning: result.planning?.rawValue)
    }
}

extension EventMessage {
    public init(_ event: DecoderEvent) {
        switch event {
        case .start(let info):
            self = .start(strategy: info.strategy, model: info.model, promptTokens: info.promptTokens,
                          maskedPromptTokens: info.maskedPromptTokens)
        case .delta(let section, let index, let text): self = .delta(section: section.rawValue, index: index, text: text)
        case .plan(let record): self = .plan(LineMessage(record))
        case .reason(let record): self = .reason(LineMessage(record))
        case .calculation(let calculation): self = .calculation(expression: calculation.expression, value: calculation.value)
        case .answer(let answer): self = .answer(AnswerMessage(answer))
        case .end(let timings): self = .end(TimingsMessage(timings))
        }
    }
}

extension AnalyzedTokenMessage {
    public init(_ token: TokenAttention) {
        self.init(index: token.index, token: Int(token.token), text: token.text, waad: token.waad, fai: token.fai,
                  delta: token.delta, preplan: token.isPreplan, anchor: token.isAnchor, gammaLocalChunk: token.gammaLocalChunk,
                  gammaGlobalAnchor: token.gammaGlobalAnchor, gammaCoupled: token.gammaCoupled)
    }
}

extension AnalysisResultMessage {
    public init(_ report: AttentionReportData) {
        let options = report.metrics.options
        self.init(model: report.model, layers: report.layers, localFraction: options.localFraction,
                  globalFraction: options.globalFraction, waadWindow: options.waadWindow,
                  faiWindow: (options.faiWindowStart, options.faiWindowEnd), preplanFraction: options.preplanFraction,
                  anchorFraction: options.anchorFraction, gammaAmp: options.gammaAmp, tauWaadQuantile: options.tauWaadQuantile,
                  tauDeltaQuantile: options.tauDeltaQuantile, alpha: options.alpha, lookback: options.lookback,
                  headsPerLayer: report.headsPerLayer, kvHeadsPerLayer: report.kvHeadsPerLayer,
                  localHeads: report.metrics.localHeads.map(report.headName), globalHeads: report.metrics.globalHeads.map(report.headName),
                  tauWaad: report.metrics.tauWaad, tauDelta: report.metrics.tauDelta, promptTokens: report.promptTokens,
                  tokens: report.tokens.map(AnalyzedTokenMessage.init), elapsedMs: report.elapsedMs,
                  peakRssMb: report.peakResidentBytes.map { Double($0) / 1_048_576 })
    }
}

extension ModelDescription {
    public init(name: String, path: String, model: LlamaModel, contextSize: Int) {
        self.init(name: name, path: path, description: model.description, parameters: Int(model.parameterCount),
                  sizeBytes: Int(model.sizeBytes), contextSize: contextSize, trainContextLength: model.trainingContextLength,
                  layers: model.layerCount, vocabularySize: model.vocabularySize)
    }
}
