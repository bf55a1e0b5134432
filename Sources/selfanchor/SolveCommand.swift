import ArgumentParser
import Evaluation
import JSON
import Llama
import SelfAnchor
import SelfAnchorProtocol
import WireMapping
import TextFiles

#if canImport(Glibc)
    import Glibc
#endif

extension Strategy: ExpressibleByArgument {}
extension TaskType: ExpressibleByArgument {}
extension SteeringOptions.Mode: ExpressibleByArgument {}
extension Planning: ExpressibleByArgument {}
extension SteeringOptions.MaskedPass: ExpressibleByArgument {}

/// `selfanchor solve`: one question, streamed to the terminal (or as NDJSON events with --json).
struct SolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "solve",
        abstract: "Solve one question, streaming each plan and reasoning step as it is generated.",
        discussion: """
            Strategies: plain, cot, ps+, re2 (baselines), spa (steer toward --anchor strings, default the \
            question), self-anchor (alternating plan and step lines, each steered toward its anchors).
            ω per step is 1 + (ω_base − 1)·g(c), with c the previous line's confidence (see README).
            """)

    @Argument(help: "The question (or use --question-file).")
    var question: String?

    @Option(name: .long, help: "Read the question from a file ('-': standard input).")
    var questionFile: String?

    @Option(name: .long, help: "plain, cot, ps+, re2, spa or self-anchor.")
    var strategy: Strategy = .selfAnchor

    @Option(name: .long, help: "Answer type for extraction: number, choice, yesno, math, text.")
    var task: TaskType = .number

    @OptionGroup var decoding: DecodingOptions

    @Flag(name: .long, help: "Print one JSON event per line (NDJSON) instead of text.")
    var json = false

    @Option(name: .long, help: "Also write the finished result as JSON (for `selfanchor analyze --result`).")
    var save: String?

    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        if question == nil && questionFile == nil { throw ValidationError("give a question, or --question-file FILE ('-' for stdin)") }
        if question != nil && questionFile != nil { throw ValidationError("give either a question or --question-file, not both") }
    }

    func makeRequest(question: String) -> SolveRequest {
        var request = SolveRequest(question: question, strategy: strategy, task: task)
        decoding.configure(&request)
        return request
    }

    private static func save(_ result: SolveResult, to path: String) throws(DecoderError) {
        do { try writeText(SolveResultMessage(result).jsonValue.serialized() + "\n", to: path) } catch {
            throw .invalidRequest("cannot write \(path): \(error)")
        }
    }

    private func readQuestionFile(_ path: String) throws -> String {
        do { return try readText(path) } catch { throw CommandFailure("\(error)") }
    }

    func run() throws {
        let text: String
        if let questionFile {
            text = questionFile == "-" ? Terminal.readStandardInput() : try readQuestionFile(questionFile)
        } else {
            text = question ?? ""
        }
        let questionText = text.trimmingSpaces
        guard !questionText.isEmpty else { throw CommandFailure("the question is empty") }

        let engine = try modelOptions.makeEngine()
        let flag = InterruptHandler.install()
        var renderer = EventRenderer(json: json)
        do {
            let result = try engine.solve(makeRequest(question: questionText), cancellation: flag) { event in
                renderer.render(event)
            }
            renderer.finish(result)
            if let save { try Self.save(result, to: save) }
        } catch .cancelled(let partial) {
            renderer.finish(partial)
            Terminal.error("cancelled\n")
            throw ExitCode(130)
        } catch {
            throw CommandFailure(error.description)
        }
    }
}


/// Ctrl-C cancels the running command (the partial output is kept); a second Ctrl-C exits at once.
/// One flag per process: a command runs one job, and the signal handler may take no lock, so it reads
/// a constant.
enum InterruptHandler {
    /// The command's cancellation, set by Ctrl-C.
    static let flag = CancellationFlag()

    /// Installs the handler and returns the flag it sets.
    static func install() -> CancellationFlag {
        // Initialise the (lazily made) constant here: the handler must not be the first to touch it.
        let flag = Self.flag
        signal(SIGINT) { _ in
            if !InterruptHandler.flag.isCancelled { InterruptHandler.flag.cancel() } else { _exit(130) }
        }
        return flag
    }
}

/// Turns decoder events into terminal text (plans visibly distinct) or NDJSON lines.
struct EventRenderer {
    let json: Bool
    private var section: (DecoderEvent.Section, Int)?

    init(json: Bool) { self.json = json }

    mutating func render(_ event: DecoderEvent) {
        if json {
            Terminal.write(EventMessage(event).jsonValue.serialized() + "\n")
            return
        }
        switch event {
        case .delta(let kind, let index, let text):
            if section.map({ $0 != (kind, index) }) ?? true {
                if section != nil { Terminal.write("\n") }
                section = (kind, index)
                switch kind {
                case .plan: Terminal.write(Terminal.styled("Plan \(index): ", .plan))
                case .reason: Terminal.write(Terminal.styled("Step \(index): ", .step))
                case .answer: Terminal.write(Terminal.styled("Answer: ", .answer))
                case .text: break
                }
            }
            Terminal.write(kind == .plan ? Terminal.styled(text, .planText) : text)
        case .answer(let answer):
            if section != nil { Terminal.write("\n") }
            section = nil
            if let extracted = answer.extracted {
                Terminal.write(Terminal.styled("⇒ \(extracted)", .answer) + "\n")
            } else {
                Terminal.write(Terminal.styled("⇒ (no answer found)", .dim) + "\n")
            }
        case .start, .plan, .reason, .calculation, .end:
            break
        }
    }

    func finish(_ result: SolveResult) {
        let t = result.timings
        if json {
            return
        }
        let rate = (t.predictedPerSecond * 10).rounded() / 10
        var line = "\(t.predictedN) tokens in \(Int(t.predictedMs)) ms, \(rate) tokens/s; prompt \(t.promptN) tokens in \(Int(t.promptMs)) ms"
        if t.maskedN > 0 { line += "; \(t.maskedN) masked-context tokens decoded" }
        if t.stopReason != .finished { line += "; stopped: \(t.stopReason.rawValue)" }
        Terminal.error(line + "\n")
    }
}
