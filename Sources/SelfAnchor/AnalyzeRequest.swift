import AttentionAnalysis
import Llama

/// What `analyze` reads attention over: the prompt the model saw and the response it wrote.
public struct AnalyzeRequest: Sendable {
    /// Where the prompt and response come from.
    public enum Source: Sendable, Equatable {
        /// Raw text: `prompt` (may be empty; the model's BOS token is added) then `response`, no template.
        case text(prompt: String, response: String)
        /// A question and an answer, laid out with the model's chat template (user turn, assistant turn).
        case conversation(question: String, response: String)
        /// A finished solve: the prompt is rebuilt exactly as that strategy built it (for self-anchor, in
        /// its layout), the response is its text.
        case solve(strategy: Strategy, question: String, task: TaskType, text: String, planning: Planning)
    }

    public var source: Source
    public var options: AttentionAnalysisOptions

    public init(source: Source, options: AttentionAnalysisOptions = AttentionAnalysisOptions()) {
        self.source = source
        self.options = options
    }
}

extension Engine {
    /// The prompt and response tokens of an analysis request.
    public func analysisTokens(_ source: AnalyzeRequest.Source) throws(DecoderError)
        -> (prompt: [LlamaToken], response: [LlamaToken])
    {
        do {
            switch source {
            case .text(let prompt, let response):
                return (try model.tokenize(prompt, addSpecial: true), try model.tokenize(response))
            case .conversation(let question, let response):
                let text = try model.applyChatTemplate([.user(question)])
                return (try model.tokenize(text, addSpecial: true, parseSpecial: true), try model.tokenize(response))
            case .solve(let strategy, let question, let task, let text, let planning):
                let (messages, prefix) = Prompts.conversation(strategy: strategy, question: question, task: task,
                                                              planning: planning)
                let prompt = try model.applyChatTemplate(messages) + prefix
                return (try model.tokenize(prompt, addSpecial: true, parseSpecial: true), try model.tokenize(text))
            }
        } catch {
            throw .llama(error)
        }
    }

    /// Reads attention over the request's text with one extra forward pass (flash attention off) and
    /// computes WAAD, FAI, preplan and anchor tokens and credit weights for every response token.
    public func analyze(_ request: AnalyzeRequest, cancellation: CancellationFlag = CancellationFlag())
        throws(DecoderError) -> AttentionReportData
    {
        let (prompt, response) = try analysisTokens(request.source)
        do {
            return try AttentionAnalyzer.analyze(model: model, prompt: prompt, response: response, options: request.options,
                                                 threads: contextOptions.threads,
                                                 shouldAbort: { cancellation.isCancelled })
        } catch {
            switch error {
            case .cancelled: throw .cancelled(partial: SolveResult(strategy: "analyze", question: "", text: "", steps: [],
                                                                   answer: nil, timings: Timings()))
            case .tooLong(let tokens, let capacity): throw .promptTooLong(tokens: tokens, capacity: capacity)
            case .llama(let error): throw .llama(error)
            case .invalidOption(let setting, let message): throw .invalidRequest(message, field: "options.\(setting.rawValue)")
            case .emptyResponse:
                let field = if case .solve = request.source { "result.text" } else { "text" }
                throw .invalidRequest("the text to analyse has no tokens", field: field)
            }
        }
    }
}
