import AttentionAnalysis
import Llama

// The Self-Anchor decoder. The model writes plans and reasoning steps in one of two layouts
// (`SolveRequest.planning`), and the decoder follows the output as it is generated:
//
//   interleaved                          upfront
//     Plan 1: <sub-goal>                   Plan:
//     Step 1: <carry it out>               1. <sub-goal>
//     Plan 2: …                            2. <sub-goal>
//     Step 2: …                            Step 1: <carry out plan item 1>
//     Answer: <final answer>               Step 2: <carry out plan item 2>
//                                          Answer: <final answer>
//
// Anchors: a plan line (and the answer line) is steered toward the question Q (masked context:
// sequence `questionMasked`); reasoning step k toward Q and the text of plan k (`planMasked`, the
// question and plan k replaced by the placeholder).
//
// The headers are written by the decoder itself, so a small model that drifts from the layout is put
// back on it. At each line end the model's own next token, steered toward Q, decides what follows
// (`StepParser.lineStart`): in interleaved mode, after a step line, the next plan, the answer, or more of
// the same step; in upfront mode, after a plan item, the next item or the first step, and after a step,
// the next step, the answer, or more of the step. Every line is generated under SPA steering with ω
// from `Steering.omega`, scaled by the confidence of the previous line. It always ends: after
// `maxSteps` steps it asks for the answer, and near `maxTokens` it cuts the current line and asks for
// the answer within the remaining budget.
//
// `attention-anchor` runs the same loop with other anchors: before each line, the generation so far is
// run through an attention-reading context (`AttentionTracker`, only the new tokens are decoded) and
// every line is steered toward the question plus the `anchorSpans` spans with the highest FAI so far
// (`AttentionAnchors`); the decoder's own headers are never anchors.
//
// In code: `SelfAnchorLoop` is the loop as a state machine (`step()` writes one token, or a header, or
// decides what the next line is), and the anchors are an `AnchorPolicy`, one per strategy:
// `QuestionAndPlanAnchors` and `AttentionSpanAnchors`.

extension DecodingRun {
    /// Self-Anchor (and attention-anchor): builds the prompts, prefills, and runs the line loop.
    func selfAnchor(_ request: SolveRequest) async throws {
        let loop = try await selfAnchorLoop(request)
        while try await loop.step() {}
        recordAnswer(task: request.task)
    }

    /// Builds the prompts, prefills the real and masked contexts, and returns the loop, its first
    /// header written, ready for `step()`.
    func selfAnchorLoop(_ request: SolveRequest) async throws -> SelfAnchorLoop {
        adopt(request.steering)
        resultOmega = request.steering.resultOmega ?? SteeringOptions.selfAnchorResultOmega
        let planning = request.planning ?? .default(for: request.task)
        result.planning = planning
        let messages = Prompts.selfAnchorMessages(question: request.question, task: request.task, planning: planning,
                                                  placeholder: request.placeholder)
        realPrompt = try realPromptTokens(messages.real, assistantPrefix: "")
        maskedPrompt = try promptTokens(messages.masked, assistantPrefix: "")
        try await prefill(steered: true)

        let placeholderTokens = try model.tokenize(" " + request.placeholder)
        let anchors: any AnchorPolicy = request.strategy == .attentionAnchor
            ? try AttentionSpanAnchors(run: self, spans: request.anchorSpans, placeholder: placeholderTokens)
            : QuestionAndPlanAnchors(run: self, placeholder: placeholderTokens)
        return try SelfAnchorLoop(run: self, request: request, planning: planning, anchors: anchors)
    }

    /// What a line beginning with this token is (see `StepParser.lineStart`).
    func lineStart(_ token: LlamaToken) -> StepParser.LineStart {
        model.isEndOfGeneration(token) ? .answer : StepParser.lineStart(model.detokenize([token]))
    }
}

/// Where a line's steering comes from: which masked context steers it, holding which tokens. One policy
/// per strategy, so the line loop knows nothing of how anchors are chosen.
protocol AnchorPolicy: AnyObject {
    /// Whether a token at ω = 1 still decodes the masked context (keeping it current for later lines).
    var decodesMaskedAtOmegaOne: Bool { get }
    /// A line begins (its header written): choose what it is steered toward.
    func lineBegins(_ segment: inout SelfAnchorLoop.Segment) throws
    /// The masked sequence that steers `segment`, and the tokens it should hold.
    func maskedContext(for segment: SelfAnchorLoop.Segment) -> (sequence: Int32, tokens: [LlamaToken])
    /// The decoder wrote `range` of `generated` itself (headers, line breaks).
    func inserted(_ range: Range<Int>)
    /// Plan line `index` is complete; its content is `range` of `generated`.
    func planWritten(_ index: Int, content range: Range<Int>)
}

/// Self-Anchor's anchors: a plan line (and the answer line) is steered toward the question (the
/// `questionMasked` sequence); reasoning step k toward the question and plan k (`planMasked`: both
/// replaced by the placeholder).
final class QuestionAndPlanAnchors: AnchorPolicy {
    private unowned let run: DecodingRun
    private let placeholder: [LlamaToken]
    /// The content of each plan line (indices into `generated`), by plan number.
    private var plans: [Int: Range<Int>] = [:]

    init(run: DecodingRun, placeholder: [LlamaToken]) {
        self.run = run
        self.placeholder = placeholder
    }

    var decodesMaskedAtOmegaOne: Bool { false }
    func lineBegins(_ segment: inout SelfAnchorLoop.Segment) {}
    func inserted(_ range: Range<Int>) {}
    func planWritten(_ index: Int, content range: Range<Int>) { plans[index] = range }

    func maskedContext(for segment: SelfAnchorLoop.Segment) -> (sequence: Int32, tokens: [LlamaToken]) {
        if case .step(let k) = segment.phase, let plan = plans[k], !plan.isEmpty {
            let generated = run.generated
            return (run.slot.planMasked,
                    run.maskedPrompt + generated[..<plan.lowerBound] + placeholder + generated[plan.upperBound...])
        }
        return (run.slot.questionMasked, run.maskedPrompt + run.generated)
    }
}

/// attention-anchor's anchors: before each line, the generation so far is run through an
/// attention-reading context (`AttentionTracker`, only the new tokens are decoded) and the line is
/// steered toward the question plus the `spans` spans with the highest FAI so far (`AttentionAnchors`);
/// the decoder's own headers are never anchors.
final class AttentionSpanAnchors: AnchorPolicy {
    private unowned let run: DecodingRun
    private let tracker: AttentionTracker
    private let spans: Int
    private let placeholder: [LlamaToken]
    /// Text the decoder inserted (headers, line breaks).
    private var insertedRanges: [Range<Int>] = []

    init(run: DecodingRun, spans: Int, placeholder: [LlamaToken]) throws {
        self.run = run
        self.spans = spans
        self.placeholder = placeholder
        tracker = try run.engine.attentionTracker(for: run.slot)
        tracker.reset(responseStart: run.realPrompt.count)
        tracker.shouldAbort = { [cancellation = run.cancellation] in cancellation.isCancelled }
    }

    deinit { tracker.shouldAbort = nil }

    var decodesMaskedAtOmegaOne: Bool { true }
    func inserted(_ range: Range<Int>) { insertedRanges.append(range) }
    func planWritten(_ index: Int, content range: Range<Int>) {}

    /// Brings the attention tracker up to date and picks the anchors for the line.
    func lineBegins(_ segment: inout SelfAnchorLoop.Segment) throws {
        guard spans > 0 else { return }
        do {
            let tokens = run.realPrompt + run.generated
            let responseStart = run.realPrompt.count
            // On the scheduler's thread, like every request's decoder: trackers decode one at a time.
            try tracker.update(to: tokens, responseStart: responseStart)
        } catch {
            switch error {
            case .cancelled: throw DecodingRun.StopDecoding.cancelled
            case .llama(let error): throw error
            default: throw DecoderError.invalidRequest("attention-anchor: \(error)")
            }
        }
        let pieces = run.generated.map { String(decoding: run.model.piece($0), as: UTF8.self) }
        segment.anchorSpans = AttentionAnchors.spans(metrics: tracker.metrics(), pieces: pieces, excluded: insertedRanges,
                                                     count: spans)
    }

    func maskedContext(for segment: SelfAnchorLoop.Segment) -> (sequence: Int32, tokens: [LlamaToken]) {
        guard !segment.anchorSpans.isEmpty else { return (run.slot.questionMasked, run.maskedPrompt + run.generated) }
        return (run.slot.planMasked,
                run.maskedPrompt + AttentionAnchors.masking(run.generated[...], spans: segment.anchorSpans,
                                                            placeholder: placeholder))
    }
}

/// The line loop of Self-Anchor as a state machine: `step()` generates one token (or writes a header,
/// or decides what the next line is) and says whether there is more to do. Its state is the line being
/// written (`segment`), the confidence of the line before it (which scales ω), and whether a step's
/// next line has been decided but not yet begun.
final class SelfAnchorLoop {
    enum Phase: Equatable {
        case plan(Int)
        case step(Int)
        case answer
    }

    /// The line being generated.
    struct Segment {
        var phase: Phase
        var omega: Double
        var steeringConfidence: Double?
        /// Index in `generated` of the first token after the header.
        var contentStart: Int
        var probabilities: [Double] = []
        var text = ""
        var isOpen = true
        /// `attention-anchor`: the generated spans steered toward (indices into `generated`).
        var anchorSpans: [Range<Int>] = []
    }

    private unowned let run: DecodingRun
    private let request: SolveRequest
    private let steering: SteeringOptions
    /// The plan, step and answer ω_base of this solve (the request's, or its task's defaults).
    private let planOmega: Double
    private let stepOmega: Double
    private let answerOmega: Double
    private let planning: Planning
    private let anchors: any AnchorPolicy
    /// Tokens kept for the answer when the budget runs out.
    private let reserve: Int
    private var previousConfidence: Double?
    /// The current step goes on to a new line, and nothing of that line is written yet.
    private var stepLineStarting = false
    /// The line being written.
    private(set) var segment: Segment!

    init(run: DecodingRun, request: SolveRequest, planning: Planning, anchors: any AnchorPolicy) throws {
        self.run = run
        self.request = request
        self.steering = request.steering
        (planOmega, stepOmega, answerOmega) = request.steering.lineOmegas(for: request.task)
        self.planning = planning
        self.anchors = anchors
        self.reserve = max(1, min(32, request.maxTokens / 4))
        segment = try begin(.plan(1))
    }

    // MARK: Lines

    private func insertHeader(_ text: String) throws {
        let start = run.generated.count
        try run.insert(text)
        anchors.inserted(start..<run.generated.count)
    }

    private func omega(for phase: Phase) -> Double {
        let base: Double
        switch phase {
        case .plan: base = planOmega
        case .answer: base = answerOmega
        case .step: base = stepOmega
        }
        return Steering.omega(base: base, confidence: previousConfidence, options: steering)
    }

    /// Writes the line's header and opens it.
    private func begin(_ phase: Phase) throws -> Segment {
        stepLineStarting = false
        switch (phase, planning) {
        case (.plan(let k), .interleaved): try insertHeader("Plan \(k):")
        case (.plan(1), .upfront): try insertHeader("Plan:\n1.")
        case (.plan(let k), .upfront): try insertHeader("\(k).")
        case (.step(let k), _): try insertHeader("Step \(k):")
        case (.answer, _): try insertHeader("Answer:")
        }
        var segment = Segment(phase: phase, omega: omega(for: phase), steeringConfidence: previousConfidence,
                              contentStart: run.generated.count)
        try anchors.lineBegins(&segment)
        return segment
    }

    /// Closes the current line: its confidence scales the next line's ω; plans and steps are recorded.
    private func endSegment() {
        guard segment.isOpen else { return }
        segment.isOpen = false
        let confidence = Steering.harmonicMean(segment.probabilities)
        if let confidence { previousConfidence = confidence }
        var record = StepRecord(index: 0, text: segment.text.trimmingSpaces, omega: segment.omega, confidence: confidence,
                                steeringConfidence: segment.steeringConfidence, tokens: segment.probabilities.count)
        record.anchors = segment.anchorSpans.map { run.model.detokenize(Array(run.generated[$0])).trimmingSpaces }
        switch segment.phase {
        case .plan(let k):
            record.index = k
            run.result.steps.append(SolveStep(plan: record, reason: nil))
            run.emit(.plan(record))
        case .step(let k):
            record.index = k
            if let open = run.result.steps.firstIndex(where: { $0.plan?.index == k && $0.reason == nil }) {
                run.result.steps[open].reason = record
            } else {
                run.result.steps.append(SolveStep(plan: nil, reason: record))
            }
            run.emit(.reason(record))
        case .answer:
            break
        }
    }

    private var atLineStart: Bool { run.result.text.isEmpty || run.result.text.hasSuffix("\n") }

    /// The model's own first token of the next line, steered toward Q, and what it starts; nil when the
    /// context is full.
    private func nextLineStart() async throws -> (token: LlamaToken, kind: StepParser.LineStart)? {
        let confidence = Steering.harmonicMean(segment.probabilities) ?? previousConfidence
        let decisionOmega = Steering.omega(base: planOmega, confidence: confidence, options: steering)
        // ω = 1 is the real logits bit for bit: no masked context needed.
        let maskedSequence = decisionOmega == 1 ? nil : run.slot.questionMasked
        guard try await run.advance(maskedSequence: maskedSequence, maskedTokens: run.maskedPrompt + run.generated) else {
            return nil
        }
        let (candidate, _) = try await run.chooseToken(maskedSequence: maskedSequence, omega: decisionOmega,
                                                 modulation: steering.modulation, greedy: true)
        return (candidate, run.lineStart(candidate))
    }

    // MARK: The step function

    /// Generates the next token of the current line, or moves to the next line; false when the solve is
    /// complete (the answer line ended, the budget or the context ran out).
    func step() async throws -> Bool {
        try run.checkCancelled()
        let (steeringSequence, maskedTokens) = anchors.maskedContext(for: segment)
        // The value after an `=` may be steered differently (`resultOmega`), token by token (a step's
        // new line, whose line break joins `segment.text` with its first token, is not a value).
        let (tokenOmega, writingResult) = stepLineStarting
            ? (segment.omega, false) : run.nextTokenOmega(line: segment.omega, after: segment.text)
        let maskedSequence = tokenOmega == 1 && !anchors.decodesMaskedAtOmegaOne ? nil : steeringSequence
        guard try await run.advance(maskedSequence: maskedSequence, maskedTokens: maskedTokens) else {
            endSegment()
            return false
        }
        let predicted = run.result.timings.predictedN
        if segment.phase != .answer && predicted >= request.maxTokens - reserve {
            // Out of budget for reasoning: close the line and ask for the answer.
            endSegment()
            run.result.timings.stopReason = .maxTokens
            if !atLineStart { try insertHeader("\n") }
            segment = try begin(.answer)
            return true
        }
        if predicted >= request.maxTokens {
            run.result.timings.stopReason = .maxTokens
            endSegment()
            return false
        }
        // A draft may run to the end of the line, but not past the point where the answer is asked for,
        // nor past an `=` when the value after it has its own ω (one ω per draft keeps it exact).
        let budget = segment.phase == .answer ? request.maxTokens : request.maxTokens - reserve
        let (token, probability) = try await run.chooseToken(maskedSequence: maskedSequence, omega: tokenOmega,
                                                       modulation: steering.modulation,
                                                       draftLimit: writingResult ? nil : budget - predicted)
        if run.model.isEndOfGeneration(token) {
            endSegment()
            if segment.phase == .answer { return false }
            if !atLineStart { try insertHeader("\n") }
            segment = try begin(.answer)
            return true
        }
        if stepLineStarting {
            stepLineStarting = false
            // The line-end decision said the step goes on, but the step, steered differently, starts
            // the answer: it is the answer line (kept inside the step, an "Answer:" line would be
            // followed by the decoder's own, and the answer read from the second).
            if run.lineStart(token) == .answer {
                endSegment()
                segment = try begin(.answer)
                return true
            }
            segment.text += "\n"
            if case .step(let k) = segment.phase { run.emit(.delta(section: .reason, index: k, text: "\n")) }
        }
        run.generated.append(token)
        run.result.timings.predictedN += 1
        segment.probabilities.append(probability)
        let text = run.appendText(token)
        let newline = text.firstIndex(of: "\n")
        var content = newline.map { String(text[..<$0]) } ?? text
        if segment.text.isEmpty {
            content = String(content.drop(while: { $0 == " " || $0 == "\t" }))
            // A line break right after the header: the content follows on the next line.
            if newline != nil && content.isEmpty { return true }
        }
        if newline == nil, let written = try run.calculate() { content += written }
        if !content.isEmpty {
            segment.text += content
            let section: DecoderEvent.Section
            let index: Int
            switch segment.phase {
            case .plan(let k): (section, index) = (.plan, k)
            case .step(let k): (section, index) = (.reason, k)
            case .answer: (section, index) = (.answer, 0)
            }
            run.emit(.delta(section: section, index: index, text: content))
        }
        guard newline != nil else { return true }
        return try await lineCompleted()
    }

    /// The line is complete: chooses what comes next, and closes the segment unless it goes on.
    private func lineCompleted() async throws -> Bool {
        switch segment.phase {
        case .plan(let k):
            endSegment()
            anchors.planWritten(k, content: segment.contentStart..<(run.generated.count - 1))
            if planning == .interleaved {
                segment = try begin(.step(k))
                return true
            }
            // Upfront: another numbered item, or the plan is complete and the first step follows.
            guard k < request.maxSteps, let next = try await nextLineStart() else {
                segment = try begin(.step(1))
                return true
            }
            segment = try begin(next.kind == .item ? .plan(k + 1) : .step(1))
        case .step(let k):
            if k >= request.maxSteps {
                endSegment()
                run.result.timings.stopReason = .maxSteps
                segment = try begin(.answer)
                return true
            }
            guard let next = try await nextLineStart() else {
                endSegment()
                return false
            }
            switch next.kind {
            case .continuation, .item:
                // The line break joins the step once its next line has begun (above).
                stepLineStarting = true
            case .answer:
                endSegment()
                segment = try begin(.answer)
            case .plan:
                endSegment()
                segment = try begin(planning == .interleaved ? .plan(k + 1) : .step(k + 1))
            }
        case .answer:
            endSegment()
            return false
        }
        return true
    }
}
