import ArgumentParser
import Llama
import SelfAnchor

/// Steering, sampling and limits: the options `solve` and `eval` share.
struct DecodingOptions: ParsableArguments {
    @Option(name: .long, help: "One ω_base for plans, steps, the answer, computed values and spa (1: no steering).")
    var omega: Double?

    @Option(name: .long, help: "ω_base for plan lines. (default: \(SteeringOptions.defaultPlanOmega(for: .number)); \(SteeringOptions.defaultPlanOmega(for: .yesno)) for --task yesno)")
    var planOmega: Double?

    @Option(name: .long, help: "ω_base for reasoning steps. (default: \(SteeringOptions.defaultStepOmega(for: .number)); \(SteeringOptions.defaultStepOmega(for: .yesno)) for --task yesno)")
    var stepOmega: Double?

    @Option(name: .long, help: "ω_base for the answer line (default: --plan-omega).")
    var answerOmega: Double?

    @Option(name: .long, help: "ω for the value the model writes after an '=' (default: 1, unsteered, for self-anchor; the line's own ω for spa).")
    var resultOmega: Double?

    @Option(name: .long, help: "self-anchor: upfront (the whole plan, then one step per item) or interleaved (Plan k / Step k alternate). (default: interleaved for yes/no questions, upfront otherwise)")
    var planning: Planning?

    @Option(name: .long, help: "fixed, or adaptive (ω scaled by the previous line's confidence). (default: \(SteeringOptions().mode.rawValue))")
    var omegaMode: SteeringOptions.Mode?

    @Flag(name: .long, help: "Scale the steering term by each token's probability (SPA modulation).")
    var modulation = false

    @Option(name: .long, help: "Steered tokens only among those with at least this share of the top token's real probability (0: off). (default: \(SteeringOptions().plausibility))")
    var plausibility: Double?

    @Option(name: .customLong("anchor"), help: "spa: a prompt string to steer toward (repeatable).")
    var anchors: [String] = []

    @Option(name: .long, help: "Text that replaces anchors in the masked context.")
    var placeholder: String = MaskedPrompt.defaultPlaceholder

    @Option(name: .long, help: "attention-anchor: highest-FAI spans of the generation steered toward (with the question).")
    var anchorSpans: Int = 3

    @Option(name: .long, help: "How the masked context is decoded: every (on every token, the reference), speculative (the real context drafts, the masked one verifies the draft in one batch; the rule of every, texts may part at near ties), adaptive (skipped where the real top-1 probability reaches --skip-masked-above; not exact). Default: \(SteeringOptions.defaultMaskedPass.rawValue).")
    var maskedPass: SteeringOptions.MaskedPass?

    @Option(name: .long, help: "The adaptive masked pass's threshold P (given alone, it selects --masked-pass adaptive; 'off': every).")
    var skipMaskedAbove: MaskedPassThreshold?

    @Flag(inversion: .prefixedNo, help: "Exact arithmetic: after 'expression =' the decoder writes the value (default: on for number answers (--task number), off for the other tasks).")
    var calculator: Bool?

    @Option(name: .long, help: "Most tokens to generate.")
    var maxTokens: Int = 768

    @Option(name: .long, help: "Most plan/step pairs (self-anchor).")
    var maxSteps: Int = 10

    @Option(name: .long, help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0

    @Option(name: .long, help: "Nucleus sampling threshold.")
    var topP: Float = 1

    @Option(name: .long, help: "Top-k sampling (0: off).")
    var topK: Int32 = 0

    @Option(name: .long, help: "Random seed for sampling.")
    var seed: UInt32 = 0

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard maxSteps > 0 else { throw ValidationError("--max-steps must be positive") }
        if let skipMaskedAbove = skipMaskedAbove?.value, !(0...1).contains(skipMaskedAbove) {
            throw ValidationError("--skip-masked-above must be a probability between 0 and 1")
        }
        if let plausibility, !(0...1).contains(plausibility) {
            throw ValidationError("--plausibility must be between 0 and 1")
        }
        guard (0...32).contains(anchorSpans) else { throw ValidationError("--anchor-spans must be between 0 and 32") }
        for value in [omega, planOmega, stepOmega, answerOmega, resultOmega].compactMap({ $0 }) where !value.isFinite {
            throw ValidationError("ω must be a finite number")
        }
        guard temperature >= 0 && temperature.isFinite else { throw ValidationError("--temperature must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
    }

    /// Applies the options to a request.
    func configure(_ request: inout SolveRequest) {
        if let omega { request.steering.setOmega(omega) }
        if let omegaMode { request.steering.mode = omegaMode }
        if let planOmega { request.steering.planOmega = planOmega }
        if let stepOmega { request.steering.stepOmega = stepOmega }
        if let answerOmega { request.steering.answerOmega = answerOmega }
        if let resultOmega { request.steering.resultOmega = resultOmega }
        if let planning { request.planning = planning }
        request.steering.modulation = modulation
        if let plausibility { request.steering.plausibility = plausibility }
        request.sampling = SamplingOptions(temperature: temperature, topP: topP, topK: topK, seed: seed)
        request.maxTokens = maxTokens
        request.maxSteps = maxSteps
        request.anchors = anchors
        request.placeholder = placeholder
        request.anchorSpans = anchorSpans
        if let skipMaskedAbove {
            request.steering.skipMaskedAbove = skipMaskedAbove.value
            request.steering.maskedPass = skipMaskedAbove.value == nil ? .every : .adaptive
        }
        if let maskedPass { request.steering.maskedPass = maskedPass }
        if let calculator { request.calculator = calculator }
    }
}

/// `--skip-masked-above`: a probability, or `off`.
struct MaskedPassThreshold: ExpressibleByArgument, CustomStringConvertible {
    var value: Double?
    init(_ value: Double?) { self.value = value }
    init?(argument: String) {
        if argument == "off" {
            value = nil
        } else if let number = Double(argument) {
            value = number
        } else {
            return nil
        }
    }
    var description: String { value.map { String($0) } ?? "off" }
    var defaultValueDescription: String { description }
}
