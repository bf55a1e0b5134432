import ArgumentParser
import AttentionAnalysis
import Evaluation
import JSON
import JSONRPC
import Llama
import SelfAnchor
import SelfAnchorProtocol
import WireMapping
import TextFiles

/// `selfanchor analyze`: preplan and anchor tokens of a text from the model's attention (WAAD, FAI),
/// with credit weights for RL, as a summary, JSON, JSONL token weights or an HTML report.
struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Find preplan and anchor tokens of a text from attention (WAAD, FAI) and export credit weights.",
        discussion: """
            One extra forward pass over prompt + response with flash attention off reads the attention of \
            five layers of the middle third; heads are split into local and global by their mean look-back \
            distance. Give the text as an argument, with --file, or give --result: a saved solve \
            (`selfanchor solve --save FILE`), the daemon's solve result, or an eval results.jsonl (every line \
            is analysed; --jsonl then gets one line per item).
            """)

    @Argument(help: "The response text to analyse (or use --file / --result).")
    var text: String?

    @Option(name: .long, help: "Read the response text from a file ('-': standard input).")
    var file: String?

    @Option(name: .long, help: "A solve result (JSON) or eval results (JSON Lines) to analyse.")
    var result: String?

    @Option(name: .long, help: "Raw text the response follows (not scored).")
    var prompt: String?

    @Option(name: .long, help: "The question the response answers (laid out with the chat template).")
    var question: String?

    @Option(name: .long, help: "With --result: the answer type, when the result does not say.")
    var task: TaskType?

    @Option(name: .long, help: "Comma-separated layers to read (default: 5 evenly spaced in the middle third).")
    var layers: String?

    @Option(name: .long, help: "How many middle-third layers to read when --layers is not given.")
    var layerCount: Int?

    @Option(name: .long, help: "W of WAAD.")
    var waadWindow: Int?

    @Option(name: .long, help: "FAI window START:END in tokens after s (default 10:100).")
    var faiWindow: String?

    @Option(name: .long, help: "Share of heads that are local (lowest mean distance).")
    var localFraction: Double?

    @Option(name: .long, help: "Share of heads that are global (highest mean distance).")
    var globalFraction: Double?

    @Option(name: .long, help: "Share of tokens flagged preplan (top Δ WAAD).")
    var preplanFraction: Double?

    @Option(name: .long, help: "Share of tokens flagged anchor (top FAI).")
    var anchorFraction: Double?

    @Option(name: .long, help: "γ_amp of the credit weights.")
    var gammaAmp: Double?

    @Option(name: .long, help: "Coupled credit: τ_waad as a quantile of WAAD.")
    var tauWaadQuantile: Double?

    @Option(name: .long, help: "Coupled credit: τ_Δ as a quantile of Δ.")
    var tauDeltaQuantile: Double?

    @Option(name: .long, help: "Coupled credit: α, the share of a dominated anchor's boost given to its preplan token.")
    var alpha: Double?

    @Option(name: .long, help: "Coupled credit: tokens before an anchor searched for its preplan token.")
    var lookback: Int?

    @Flag(name: .long, help: "Print the whole analysis as JSON (the daemon's analyze result).")
    var json = false

    @Option(name: .long, help: "Write token weights as JSON Lines, one line per text ('-': stdout).")
    var jsonl: String?

    @Option(name: .long, help: "Write a self-contained HTML report.")
    var html: String?

    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        let sources = [text != nil, file != nil, result != nil].filter { $0 }.count
        if sources == 0 { throw ValidationError("give the text, --file FILE or --result FILE") }
        if sources > 1 { throw ValidationError("give only one of: the text, --file, --result") }
        if result != nil && (prompt != nil || question != nil) {
            throw ValidationError("--prompt and --question go with a text; a --result brings its own question")
        }
        if prompt != nil && question != nil { throw ValidationError("give either --prompt or --question, not both") }
        if let faiWindow, parseWindow(faiWindow) == nil { throw ValidationError("--fai-window must look like 10:100") }
        if let layers, parseLayers(layers) == nil { throw ValidationError("--layers must be comma-separated integers") }
    }

    private func parseWindow(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]) else { return nil }
        return (low, high)
    }

    private func parseLayers(_ text: String) -> [Int]? {
        let parts = text.split(separator: ",").map { Int($0.filter { $0 != " " }) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        return parts.map { $0! }
    }

    /// The analysis settings the flags ask for; checked against the model once it is loaded.
    private var analysisOptions: AttentionAnalysisOptions {
        var options = AttentionAnalysisOptions()
        if let layers { options.layers = parseLayers(layers) }
        if let layerCount { options.layerCount = layerCount }
        if let waadWindow { options.waadWindow = waadWindow }
        if let faiWindow, let (start, end) = parseWindow(faiWindow) {
            options.faiWindowStart = start
            options.faiWindowEnd = end
        }
        if let localFraction { options.localFraction = localFraction }
        if let globalFraction { options.globalFraction = globalFraction }
        if let preplanFraction { options.preplanFraction = preplanFraction }
        if let anchorFraction { options.anchorFraction = anchorFraction }
        if let gammaAmp { options.gammaAmp = gammaAmp }
        if let tauWaadQuantile { options.tauWaadQuantile = tauWaadQuantile }
        if let tauDeltaQuantile { options.tauDeltaQuantile = tauDeltaQuantile }
        if let alpha { options.alpha = alpha }
        if let lookback { options.lookback = lookback }
        return options
    }

    /// The flag that sets `setting`: `localFraction` is `--local-fraction`.
    static func flag(_ setting: AttentionAnalysisOptions.Setting) -> String {
        "--" + setting.rawValue.map { $0.isUppercase ? "-" + $0.lowercased() : String($0) }.joined()
    }

    /// One analysis request per text to analyse, with the id it is exported under.
    private func requests() throws -> [(id: String, request: AnalyzeRequest)] {
        let options = analysisOptions
        guard let result else {
            let body: String
            if let file {
                do { body = file == "-" ? Terminal.readStandardInput() : try readText(file) } catch {
                    throw CommandFailure("\(error)")
                }
            } else {
                body = text ?? ""
            }
            if body.isEmpty { throw CommandFailure("analyze: the text is empty") }
            let source: AnalyzeRequest.Source =
                if let question { .conversation(question: question, response: body) }
                else { .text(prompt: prompt ?? "", response: body) }
            return [("1", AnalyzeRequest(source: source, options: options))]
        }
        let content: String
        do { content = result == "-" ? Terminal.readStandardInput() : try readText(result) } catch {
            throw CommandFailure("\(error)")
        }
        var documents: [JSONValue] = []
        if let whole = try? JSONValue.parse(content) {
            documents = [whole]
        } else {
            for (number, line) in content.split(whereSeparator: \.isNewline).enumerated()
            where !line.allSatisfy(\.isWhitespace) {
                do { documents.append(try JSONValue.parse(String(line))) } catch {
                    throw CommandFailure("\(result): line \(number + 1) is not JSON: \(error)")
                }
            }
        }
        guard !documents.isEmpty else { throw CommandFailure("\(result): no solve result in it") }
        return try documents.enumerated().map { index, document in
            // A JSON-RPC response carries the solve result in `result`.
            let body = document["jsonrpc"] != nil ? (document["result"] ?? .null) : document
            var params: JSONObject = ["result": body]
            if let task { params["task"] = .string(task.rawValue) }
            let parsed: AnalyzeParams
            do { parsed = try AnalyzeParams(.object(params)) } catch let error as ResponseError {
                throw CommandFailure("\(result) item \(index + 1): " + error.message.replacing("params.", with: ""))
            } catch {
                throw CommandFailure("\(result) item \(index + 1): \(error)")
            }
            var request = AnalyzeRequest(parsed)
            request.options = options
            let id = document["id"]?.stringValue ?? document["id"].map { $0.serialized() } ?? "\(index + 1)"
            let suffix = document["strategy"]?.stringValue.map { "/" + $0 } ?? ""
            return (id + (documents.count > 1 ? suffix : ""), request)
        }
    }

    func run() throws {
        let requests = try requests()
        if html != nil && requests.count > 1 {
            throw CommandFailure("--html writes one report: \(result ?? "the input") holds \(requests.count) texts")
        }
        let engine = try modelOptions.makeEngine()
        if let problem = analysisOptions.problem(modelLayers: engine.model.layerCount) {
            throw CommandFailure("\(Self.flag(problem.setting)): \(problem.message)")
        }
        let flag = InterruptHandler.install()
        var lines: [String] = []
        for (number, (id, request)) in requests.enumerated() {
            let report: AttentionReportData
            do { report = try engine.analyze(request, cancellation: flag) } catch {
                if case .cancelled = error { throw ExitCode(130) }
                throw CommandFailure(requests.count > 1 ? "\(id): \(error)" : "\(error)")
            }
            if requests.count > 1 { Terminal.error("analysed \(number + 1)/\(requests.count) (\(id))\n") }
            if jsonl != nil { lines.append(Self.weightsLine(id: id, report).serialized()) }
            if json {
                Terminal.write(AnalysisResultMessage(report).jsonValue.serialized() + "\n")
            } else if requests.count == 1 && jsonl != "-" {
                Terminal.write(Self.summary(report))
            }
            if let html {
                do { try writeText(AttentionReport.html(report), to: html) } catch { throw CommandFailure("\(error)") }
                Terminal.error("wrote \(html)\n")
            }
        }
        if let jsonl {
            let body = lines.joined(separator: "\n") + "\n"
            if jsonl == "-" { Terminal.write(body) } else {
                do { try writeText(body, to: jsonl) } catch { throw CommandFailure("\(error)") }
                Terminal.error("wrote \(lines.count) line(s) of token weights to \(jsonl)\n")
            }
        }
    }

    /// One text's token weights, aligned arrays: what an RL trainer multiplies its advantages by.
    static func weightsLine(id: String, _ report: AttentionReportData) -> JSONValue {
        let tokens = report.tokens
        return [
            "id": .string(id), "model": .string(report.model), "promptTokens": .int(report.promptTokens),
            "tokenIds": .array(tokens.map { .int(Int($0.token)) }),
            "tokens": .array(tokens.map { .string($0.text) }),
            "waad": .array(tokens.map { .double($0.waad) }),
            "fai": .array(tokens.map { $0.fai.map(JSONValue.double) ?? .null }),
            "preplan": .array(tokens.map { .bool($0.isPreplan) }),
            "anchor": .array(tokens.map { .bool($0.isAnchor) }),
            "gamma": [
                "localChunk": .array(tokens.map { .double($0.gammaLocalChunk) }),
                "globalAnchor": .array(tokens.map { .double($0.gammaGlobalAnchor) }),
                "coupled": .array(tokens.map { .double($0.gammaCoupled) }),
            ],
        ]
    }

    /// A short human-readable account: heads, counts, the strongest anchors and preplan tokens.
    static func summary(_ report: AttentionReportData) -> String {
        let metrics = report.metrics
        func shown(_ token: TokenAttention) -> String {
            "\"" + token.text.replacing("\n", with: "\\n") + "\"@\(token.index)"
        }
        var text = "model: \(report.model)\n"
        text += "layers: \(report.layers.map(String.init).joined(separator: ", ")) "
            + "(\(report.headsPerLayer) query heads, \(report.kvHeadsPerLayer) KV heads per layer)\n"
        text += "local heads: \(metrics.localHeads.map(report.headName).joined(separator: " "))\n"
        text += "global heads: \(metrics.globalHeads.map(report.headName).joined(separator: " "))\n"
        text += "tokens: \(report.promptTokens) prompt, \(report.tokens.count) response; "
            + "\(metrics.isAnchor.filter { $0 }.count) anchors, \(metrics.isPreplan.filter { $0 }.count) preplan\n"
        let anchors = report.tokens.filter { $0.fai != nil }.sorted { ($0.fai!, -$0.index) > ($1.fai!, -$1.index) }.prefix(10)
        text += "top FAI: " + anchors.map { shown($0) + " \(AttentionReport.format($0.fai!))" }.joined(separator: ", ") + "\n"
        let preplans = report.tokens.sorted { ($0.delta, -$0.index) > ($1.delta, -$1.index) }.prefix(10)
        text += "top ΔWAAD: " + preplans.map { shown($0) + " \(AttentionReport.format($0.delta))" }.joined(separator: ", ") + "\n"
        text += "took \(Int(report.elapsedMs)) ms"
        if let peak = report.peakResidentBytes { text += "; peak RSS \(peak / 1_048_576) MB" }
        return text + "\n"
    }
}
