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

extension DecodingRun {
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

    func selfAnchor(_ request: SolveRequest) throws {
        maskedPass = request.steering.maskedPass
        skipMaskedAbove = request.steering.skipMaskedAbove
        resultOmega = request.steering.resultOmega ?? SteeringOptions.selfAnchorResultOmega
        let planning = request.planning ?? .default(for: request.task)
        result.planning = planning
        let messages = Prompts.selfAnchorMessages(question: request.question, task: request.task, planning: planning,
                                                  placeholder: request.placeholder)
        realPrompt = try realPromptTokens(messages.real, assistantPrefix: "")
        maskedPrompt = try promptTokens(messages.masked, assistantPrefix: "")
        try prefill(steered: true)

        let steering = request.steering
        let placeholderTokens = try model.tokenize(" " + request.placeholder)
        let reserve = max(1, min(32, request.maxTokens / 4))
        var previousConfidence: Double?
        /// The current step goes on to a new line, and nothing of that line is written yet.
        var stepLineStarting = false
        /// The content of each plan (indices into `generated`), by plan number.
        var planContent: [Int: Range<Int>] = [:]
        let attentionMode = request.strategy == .attentionAnchor
        /// Text the decoder inserted (headers, line breaks): never an attention anchor.
        var insertedRanges: [Range<Int>] = []
        let tracker = attentionMode ? try engine.attentionTracker(for: slot) : nil
        tracker?.reset(responseStart: realPrompt.count)
        tracker?.shouldAbort = { [cancellation] in cancellation.isCancelled }
        defer { tracker?.shouldAbort = nil }

        /// Brings the attention tracker up to date and picks the anchors for the next line.
        func chooseAnchorSpans() throws -> [Range<Int>] {
            guard let tracker, request.anchorSpans > 0 else { return [] }
            do {
                let tokens = realPrompt + generated
                try engine.trackerLock.withLock { () throws(AttentionError) in
                    try tracker.update(to: tokens, responseStart: realPrompt.count)
                }
            } catch {
                switch error {
                case .cancelled: throw StopDecoding.cancelled
                case .llama(let error): throw error
                default: throw DecoderError.invalidRequest("attention-anchor: \(error)")
                }
            }
            let pieces = generated.map { String(decoding: model.piece($0), as: UTF8.self) }
            return AttentionAnchors.spans(metrics: tracker.metrics(), pieces: pieces, excluded: insertedRanges,
                                          count: request.anchorSpans)
        }
        func insertHeader(_ text: String) throws {
            let start = generated.count
            try insert(text)
            insertedRanges.append(start..<generated.count)
        }

        func omega(for phase: Phase) -> Double {
            switch phase {
            case .plan: return Steering.omega(base: steering.planOmega, confidence: previousConfidence, options: steering)
            case .answer: return Steering.omega(base: steering.answerOmega ?? steering.planOmega, confidence: previousConfidence,
                                                options: steering)
            case .step: return Steering.omega(base: steering.stepOmega, confidence: previousConfidence, options: steering)
            }
        }
        func begin(_ phase: Phase) throws -> Segment {
            stepLineStarting = false
            switch (phase, planning) {
            case (.plan(let k), .interleaved): try insertHeader("Plan \(k):")
            case (.plan(1), .upfront): try insertHeader("Plan:\n1.")
            case (.plan(let k), .upfront): try insertHeader("\(k).")
            case (.step(let k), _): try insertHeader("Step \(k):")
            case (.answer, _): try insertHeader("Answer:")
            }
            var segment = Segment(phase: phase, omega: omega(for: phase), steeringConfidence: previousConfidence,
                                  contentStart: generated.count)
            if attentionMode { segment.anchorSpans = try chooseAnchorSpans() }
            return segment
        }
        func end(_ segment: inout Segment) {
            guard segment.isOpen else { return }
            segment.isOpen = false
            let confidence = Steering.harmonicMean(segment.probabilities)
            if let confidence { previousConfidence = confidence }
            var record = StepRecord(index: 0, text: segment.text.trimmingSpaces, omega: segment.omega, confidence: confidence,
                                    steeringConfidence: segment.steeringConfidence, tokens: segment.probabilities.count)
            record.anchors = segment.anchorSpans.map { model.detokenize(Array(generated[$0])).trimmingSpaces }
            switch segment.phase {
            case .plan(let k):
                record.index = k
                result.steps.append(SolveStep(plan: record, reason: nil))
                emit(.plan(record))
            case .step(let k):
                record.index = k
                if let open = result.steps.firstIndex(where: { $0.plan?.index == k && $0.reason == nil }) {
                    result.steps[open].reason = record
                } else {
                    result.steps.append(SolveStep(plan: nil, reason: record))
                }
                emit(.reason(record))
            case .answer:
                break
            }
        }
        /// Which masked context steers the segment, and the tokens it should hold.
        func maskedContext(_ segment: Segment) -> (Int32, [LlamaToken]) {
            if attentionMode {
                guard !segment.anchorSpans.isEmpty else { return (slot.questionMasked, maskedPrompt + generated) }
                return (slot.planMasked,
                        maskedPrompt + AttentionAnchors.masking(generated[...], spans: segment.anchorSpans,
                                                                placeholder: placeholderTokens))
            }
            if case .step(let k) = segment.phase, let plan = planContent[k], !plan.isEmpty {
                return (slot.planMasked,
                        maskedPrompt + generated[..<plan.lowerBound] + placeholderTokens + generated[plan.upperBound...])
            }
            return (slot.questionMasked, maskedPrompt + generated)
        }
        var atLineStart: Bool { result.text.isEmpty || result.text.hasSuffix("\n") }
        /// The model's own first token of the next line, steered toward Q, and what it starts; nil when the
        /// context is full.
        func nextLineStart(after segment: Segment) throws -> (token: LlamaToken, kind: StepParser.LineStart)? {
            let confidence = Steering.harmonicMean(segment.probabilities) ?? previousConfidence
            let decisionOmega = Steering.omega(base: steering.planOmega, confidence: confidence, options: steering)
            // ω = 1 is the real logits bit for bit: no masked context needed.
            let maskedSequence = decisionOmega == 1 ? nil : slot.questionMasked
            guard try advance(maskedSequence: maskedSequence, maskedTokens: maskedPrompt + generated) else { return nil }
            let (candidate, _) = try chooseToken(maskedSequence: maskedSequence, omega: decisionOmega,
                                                 modulation: steering.modulation, greedy: true)
            return (candidate, lineStart(candidate))
        }

        var segment = try begin(.plan(1))
        decoding: while true {
            try checkCancelled()
            let (steeringSequence, maskedTokens) = maskedContext(segment)
            // The value after an `=` may be steered differently (`resultOmega`), token by token (a step's
            // new line, whose line break joins `segment.text` with its first token, is not a value).
            let (tokenOmega, writingResult) = stepLineStarting
                ? (segment.omega, false) : nextTokenOmega(line: segment.omega, after: segment.text)
            let maskedSequence = tokenOmega == 1 && !attentionMode ? nil : steeringSequence
            guard try advance(maskedSequence: maskedSequence, maskedTokens: maskedTokens) else {
                end(&segment)
                break
            }
            let predicted = result.timings.predictedN
            if segment.phase != .answer && predicted >= request.maxTokens - reserve {
                // Out of budget for reasoning: close the line and ask for the answer.
                end(&segment)
                result.timings.stopReason = .maxTokens
                if !atLineStart { try insertHeader("\n") }
                segment = try begin(.answer)
                continue
            }
            if predicted >= request.maxTokens {
                result.timings.stopReason = .maxTokens
                end(&segment)
                break
            }
            // A draft may run to the end of the line, but not past the point where the answer is asked for,
            // nor past an `=` when the value after it has its own ω (one ω per draft keeps it exact).
            let budget = segment.phase == .answer ? request.maxTokens : request.maxTokens - reserve
            let (token, probability) = try chooseToken(maskedSequence: maskedSequence, omega: tokenOmega,
                                                       modulation: steering.modulation,
                                                       draftLimit: writingResult ? nil : budget - predicted)
            if model.isEndOfGeneration(token) {
                end(&segment)
                if segment.phase == .answer { break }
                if !atLineStart { try insertHeader("\n") }
                segment = try begin(.answer)
                continue
            }
            if stepLineStarting {
                stepLineStarting = false
                // The line-end decision said the step goes on, but the step, steered differently, starts
                // the answer: it is the answer line (kept inside the step, an "Answer:" line would be
                // followed by the decoder's own, and the answer read from the second).
                if lineStart(token) == .answer {
                    end(&segment)
                    segment = try begin(.answer)
                    continue
                }
                segment.text += "\n"
                if case .step(let k) = segment.phase { emit(.delta(section: .reason, index: k, text: "\n")) }
            }
            generated.append(token)
            result.timings.predictedN += 1
            segment.probabilities.append(probability)
            let text = appendText(token)
            let newline = text.firstIndex(of: "\n")
            var content = newline.map { String(text[..<$0]) } ?? text
            if segment.text.isEmpty {
                content = String(content.drop(while: { $0 == " " || $0 == "\t" }))
                // A line break right after the header: the content follows on the next line.
                if newline != nil && content.isEmpty { continue }
            }
            if newline == nil, let written = try calculate() { content += written }
            if !content.isEmpty {
                segment.text += content
                let section: DecoderEvent.Section
                let index: Int
                switch segment.phase {
                case .plan(let k): (section, index) = (.plan, k)
                case .step(let k): (section, index) = (.reason, k)
                case .answer: (section, index) = (.answer, 0)
                }
                emit(.delta(section: section, index: index, text: content))
            }
            guard newline != nil else { continue }

            // The line is complete: choose what comes next, and close the segment unless it goes on.
            switch segment.phase {
            case .plan(let k):
                end(&segment)
                planContent[k] = segment.contentStart..<(generated.count - 1)
                if planning == .interleaved {
                    segment = try begin(.step(k))
                    continue
                }
                // Upfront: another numbered item, or the plan is complete and the first step follows.
                guard k < request.maxSteps, let next = try nextLineStart(after: segment) else {
                    segment = try begin(.step(1))
                    continue
                }
                segment = try begin(next.kind == .item ? .plan(k + 1) : .step(1))
            case .step(let k):
                if k >= request.maxSteps {
                    end(&segment)
                    result.timings.stopReason = .maxSteps
                    segment = try begin(.answer)
                    continue
                }
                guard let next = try nextLineStart(after: segment) else {
                    end(&segment)
                    break decoding
                }
                switch next.kind {
                case .continuation, .item:
                    // The line break joins the step once its next line has begun (below).
                    stepLineStarting = true
                case .answer:
                    end(&segment)
                    segment = try begin(.answer)
                case .plan:
                    end(&segment)
                    segment = try begin(planning == .interleaved ? .plan(k + 1) : .step(k + 1))
                }
            case .answer:
                end(&segment)
                break decoding
            }
        }

        recordAnswer(task: request.task)
    }

    /// What a line beginning with this token is (see `StepParser.lineStart`).
    func lineStart(_ token: LlamaToken) -> StepParser.LineStart {
        model.isEndOfGeneration(token) ? .answer : StepParser.lineStart(model.detokenize([token]))
    }
}
