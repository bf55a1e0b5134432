// The decoder's math, all in one place: SPA's logit combination, the confidence score, and the
// confidence-scaled steering strength of Self-Anchor.
//
//   steered(v) = ω·real(v) + (1 − ω)·masked(v)                                  (SPA)
//              = real(v) + (ω − 1)·(real(v) − masked(v))
//   with modulation: steered(v) = real(v) + (ω − 1)·(real(v) − masked(v))·p_real(v)/max p_real
//   plausibility α (ω > 1 only): steered(v) = −∞ where p_real(v) < α·max p_real
//
//   c   = n / Σ 1/p_i           harmonic mean of the real (unsteered) probabilities of the n tokens
//                                chosen in the previous step
//   g(c) = min(gMax, (1 − c)/(1 − cRef))      decreasing in c, bounded in [0, gMax], g(cRef) = 1
//   ω_k = 1 + (ω_base − 1)·g(c)              low confidence → stronger steering; fixed mode: g ≡ 1
//
// ω = 1 leaves the real logits untouched (plain decoding); ω = 0 gives the masked logits (the model
// without the anchor); ω > 1 amplifies what the anchor contributes.
//
// Plausibility (`plausibility` = α, contrastive decoding's adaptive plausibility constraint): with ω > 1
// the steered choice is made only among the tokens the real context itself finds plausible, those with
// at least α times the top token's probability. Amplifying real − masked promotes any token the anchor
// raises, and among tokens the model all but rules out that difference is large and meaningless: at
// ω = 2 the 1.5B model, adding up three lego sets of 500, 1500 and 375 pieces, wrote "48 + 1500 + 375"
// (48 is a number of the prompt's worked example), where unsteered it wrote 500 (gsm8k-dev item 146).
// Off by default: at α = 0.1 it acted on about half of gsm8k-dev's texts, mostly in a step's first
// words, and answered no more (README, "Steering only among plausible tokens").
//
// Computed values (`resultOmega`): while the model writes the value after an `=` (the line's text since
// its last `=` is only spaces, digits and `$ , . %`), the token is chosen at ω = resultOmega instead of
// the line's ω. The anchors hold the facts, not the arithmetic: the masked context sees the same
// expression, so amplifying real − masked there only adds noise to the digits (at ω = 2 the 1.5B model
// wrote 500 × 24 = 120,000 where it wrote 12,000 unsteered). Self-anchor's default is 1 (unsteered).
//
// Adaptive masked pass (`skipMaskedAbove` = τ, 0.9 by default; nil turns it off): a token whose real top-1 probability
// p₁ ≥ τ is taken without the masked context, which is then not decoded for it (it catches up, all
// missed tokens in one batch, at the next token that needs it). Why this rarely changes the choice:
// for ω > 1 the steered score of a rival v beats the top token t only if
//     masked(t) − masked(v) > ω/(ω−1) · (real(t) − real(v)),
// i.e. only if the model *without* the anchor prefers t by ω/(ω−1) times the real margin (4.3× at
// ω = 1.3); at p₁ ≥ 0.9 the real margin is at least ln 9 ≈ 2.2 nats, so the masked margin would have
// to exceed ≈ 9.5 nats. It is a heuristic, not a bound: that margin is not known without decoding.
//
// Speculative masked pass (exact): the real context drafts up to K tokens alone, keeping the real
// logits r_i at each drafted position; the masked context then decodes those positions in one batch,
// giving m_i. Greedy: accept draft token t_i while argmax(ω·r_i + (1−ω)·m_i) = t_i; at the first
// difference take the steered argmax and drop the rest of the draft. Sampling: p = the real
// distribution t_i was drawn from, q = the steered one (both after the sampler's top-k/top-p/temperature);
// accept t_i with probability min(1, q(t_i)/p(t_i)), otherwise draw from max(0, q − p)/Σ max(0, q − p)
// and stop. Either way each token is distributed exactly as the steered choice (greedy: it *is* the
// steered argmax), so the output is that of the masked pass on every token; only the cost changes.

#if canImport(Glibc)
    import Glibc
#endif

/// How strongly, and how adaptively, the decoder steers toward the anchors.
public struct SteeringOptions: Sendable, Equatable {
    // The defaults were chosen on gsm8k-dev (README, "How the defaults were chosen"): steering each step
    // toward the question and its plan item at a fixed ω = 2 answered the most; steering plan items
    // toward the question as well (ω 1.3) answered fewer, and so did confidence-scaled ω. Yes/no
    // questions were measured apart (strategyqa-dev, README): there steps steered toward the question
    // restate its premise as a fact and the answer turns "yes", so their plans (which end on the verdict in
    // the interleaved layout) and the answer line are steered instead.

    /// ω_base for plan lines (anchor: the question); nil: the task's default (`defaultPlanOmega`).
    public var planOmega: Double? = nil
    /// ω_base for reasoning steps (anchors: the question and the current plan); nil: the task's default.
    public var stepOmega: Double? = nil

    /// Plans unsteered (1) except on yes/no questions (2).
    public static func defaultPlanOmega(for task: TaskType) -> Double { task == .yesno ? 2 : 1 }
    /// Steps at 2 except on yes/no questions (1: unsteered).
    public static func defaultStepOmega(for task: TaskType) -> Double { task == .yesno ? 1 : 2 }

    /// The plan, step and answer ω_base a solve of `task` uses: the request's, or the task's defaults (the
    /// answer line follows the plans).
    public func lineOmegas(for task: TaskType) -> (plan: Double, step: Double, answer: Double) {
        let plan = planOmega ?? Self.defaultPlanOmega(for: task)
        return (plan, stepOmega ?? Self.defaultStepOmega(for: task), answerOmega ?? plan)
    }
    /// ω_base for the answer line (anchor: the question); nil: the plans' ω_base.
    public var answerOmega: Double? = nil
    /// ω for the value the model writes after an `=` (see the file's header). nil: the strategy's
    /// default, `selfAnchorResultOmega` for self-anchor and attention-anchor, the line's own ω for spa.
    public var resultOmega: Double? = nil
    /// Self-anchor leaves computed values unsteered unless told otherwise: on gsm8k-dev (200 items, paired,
    /// README "Computed values unsteered") that answered more items than steering them at the step's ω.
    public static let selfAnchorResultOmega = 1.0
    /// ω of `spa` (anchors: the caller's, or the question), SPA's own range.
    public var spaOmega: Double = 1.3
    /// `fixed`: ω = ω_base always; `adaptive`: ω scaled by the previous step's confidence.
    public var mode: Mode = .fixed
    /// The confidence at which g = 1 (ω = ω_base).
    public var referenceConfidence: Double = 0.8
    /// The cap on g: ω never exceeds 1 + (ω_base − 1)·gMax.
    public var maximumGain: Double = 1.5
    /// Scale the steering term for each token by its real probability relative to the most likely
    /// token (SPA's optional modulation), which keeps large ω from promoting unlikely tokens.
    public var modulation: Bool = false
    /// α of the plausibility constraint (see the file's header): with ω > 1, only tokens whose real
    /// probability is at least α times the top token's can be chosen. 0 (the default) turns it off: at
    /// α = 0.1, contrastive decoding's value, self-anchor answered no more of gsm8k-dev than without it
    /// (README, "Steering only among plausible tokens"); it is there for stronger steering.
    public var plausibility: Double = 0
    /// Adaptive masked pass: skip the masked context on tokens whose real top-1 probability is at least
    /// this (nil: never skip). See the file's header for the rule.
    public var skipMaskedAbove: Double? = SteeringOptions.defaultSkipMaskedAbove
    /// On by default: on gsm8k-dev (100 items) and strategyqa-dev (100) it changed no accuracy while
    /// skipping about three masked tokens in four (README, `selfanchor bench`).
    public static let defaultSkipMaskedAbove = 0.9

    /// How the masked context is decoded (see the file's header): on every token (the reference),
    /// speculatively (drafts verified in one batch, exact), or adaptively (skipped on confident tokens).
    public var maskedPass: MaskedPass = SteeringOptions.defaultMaskedPass
    /// Adaptive: measured by `selfanchor bench` (README), the exact speculative pass costs as much as the
    /// masked context on every token on a CPU, where a batch of n tokens costs nearly n single decodes;
    /// skipping confident tokens is what saves time there.
    public static let defaultMaskedPass = MaskedPass.adaptive

    public enum Mode: String, Sendable, CaseIterable { case adaptive, fixed }

    /// The masked pass's modes; `adaptive` uses `skipMaskedAbove`.
    public enum MaskedPass: String, Sendable, CaseIterable { case every, speculative, adaptive }

    public init() {}

    /// One ω for every token (`--omega 1.5`): plans, steps, the answer, computed values and `spa`.
    public init(omega: Double, mode: Mode = .fixed) {
        setOmega(omega)
        self.mode = mode
    }

    /// Sets one ω for every token: plans, steps, computed values and `spa`; the answer line follows the
    /// plans unless `answerOmega` is set. What `--omega` and `options.omega` mean.
    public mutating func setOmega(_ omega: Double) {
        planOmega = omega
        stepOmega = omega
        spaOmega = omega
        resultOmega = omega
    }
}

/// The formulas above, as functions over plain arrays so they can be tested without a model.
public enum Steering {
    /// g(c): the confidence gain, decreasing in c, 1 at the reference confidence, within [0, gMax].
    public static func gain(confidence c: Double, options: SteeringOptions) -> Double {
        guard options.mode == .adaptive, c.isFinite else { return 1 }
        let reference = min(max(options.referenceConfidence, 0), 0.999)
        let raw = (1 - min(max(c, 0), 1)) / (1 - reference)
        return min(options.maximumGain, max(0, raw))
    }

    /// ω_k = 1 + (ω_base − 1)·g(c). With no previous step (`confidence` nil) ω_k = ω_base.
    public static func omega(base: Double, confidence: Double?, options: SteeringOptions) -> Double {
        guard let confidence else { return base }
        return 1 + (base - 1) * gain(confidence: confidence, options: options)
    }

    /// Whether the next token continues the value after an `=`: the text since the last `=` of its
    /// last line is only spaces, digits and `$ , . %` (and there is such an `=`).
    public static func isWritingResult<Text: StringProtocol>(after text: Text) -> Bool {
        for character in text.reversed() {
            switch character {
            case "=": return true
            case " ", "$", ",", ".", "%", "0"..."9": continue
            default: return false
            }
        }
        return false
    }

    /// The harmonic mean n / Σ 1/p_i of token probabilities; nil for no tokens. A zero probability
    /// (which greedy decoding never chooses) is floored at 1e-12 so the mean stays defined.
    public static func harmonicMean(_ probabilities: [Double]) -> Double? {
        guard !probabilities.isEmpty else { return nil }
        let reciprocal = probabilities.reduce(0) { $0 + 1 / max($1, 1e-12) }
        return Double(probabilities.count) / reciprocal
    }

    /// Writes ω·real + (1−ω)·masked into `output` (all three the vocabulary's length), then, with ω > 1
    /// and `plausibility` α > 0, −∞ for every token whose real probability is below α times the top one's.
    /// Written so that ω = 1 gives `real` and ω = 0 gives `masked` exactly, bit for bit.
    public static func combine(real: UnsafeBufferPointer<Float>, masked: UnsafeBufferPointer<Float>, omega: Double,
                               modulation: Bool, plausibility: Double = 0, into output: UnsafeMutableBufferPointer<Float>)
    {
        precondition(real.count == masked.count && output.count == real.count)
        let w = Float(omega)
        let rest = 1 - w
        var top = -Float.infinity
        if modulation || (w > 1 && plausibility > 0) {
            for v in 0..<real.count where real[v] > top { top = real[v] }
        }
        if !modulation {
            for v in 0..<real.count {
                let value = w * real[v] + rest * masked[v]
                output[v] = value.isNaN ? real[v] : value
            }
        } else {
            // Modulated: real + (ω−1)·(real−masked)·exp(real − max real), i.e. scaled by p(v)/max p.
            let strength = w - 1
            for v in 0..<real.count {
                let difference = min(max(real[v] - masked[v], -1e3), 1e3)
                let value = real[v] + strength * difference * expf(real[v] - top)
                output[v] = value.isNaN ? real[v] : value
            }
        }
        guard w > 1, plausibility > 0 else { return }
        // p(v)/max p = exp(real(v) − max real) ≥ α  ⟺  real(v) ≥ max real + ln α.
        let floor = top + Float(log(min(plausibility, 1)))
        for v in 0..<real.count where real[v] < floor { output[v] = -Float.infinity }
    }

    /// The most likely token and its probability under softmax(logits).
    public static func topProbability(_ logits: UnsafeBufferPointer<Float>) -> (token: Int32, probability: Double) {
        var top = -Float.infinity
        var index = 0
        for (i, value) in logits.enumerated() where value > top {
            top = value
            index = i
        }
        var sum: Double = 0
        for value in logits { sum += Double(expf(value - top)) }
        return (Int32(index), 1 / sum)
    }

    /// The probability of `token` under softmax(logits).
    public static func probability(of token: Int32, logits: UnsafeBufferPointer<Float>) -> Double {
        var top = -Float.infinity
        for value in logits where value > top { top = value }
        var sum: Double = 0
        for value in logits { sum += Double(expf(value - top)) }
        return Double(expf(logits[Int(token)] - top)) / sum
    }

    /// Speculative sampling's acceptance test for a drafted token: true with probability
    /// min(1, steered/real), given a uniform draw in [0, 1).
    public static func acceptsDraft(realProbability p: Double, steeredProbability q: Double, uniform: Double) -> Bool {
        if q >= p { return true }
        return p > 0 && uniform < q / p
    }

    /// The token drawn, after a rejected draft, from the residual max(0, q − p) normalised, where p and q
    /// are sparse distributions (token → probability; absent tokens have probability 0). `uniform` is a
    /// draw in [0, 1). When the residual is empty (p = q), draws from q.
    public static func residualSample(real p: [Int32: Double], steered q: [Int32: Double], uniform: Double) -> Int32 {
        var residual: [(Int32, Double)] = []
        var total = 0.0
        for (token, probability) in q {
            let mass = probability - (p[token] ?? 0)
            if mass > 0 {
                residual.append((token, mass))
                total += mass
            }
        }
        guard total > 0 else { return sample(q, uniform: uniform) }
        return draw(residual, total: total, uniform: uniform)
    }

    /// The token a uniform draw in [0, 1) picks from a sparse distribution (token → probability), tokens
    /// taken in id order so that a seed repeats.
    public static func sample(_ distribution: [Int32: Double], uniform: Double) -> Int32 {
        let masses = distribution.map { ($0.key, $0.value) }
        return draw(masses, total: masses.reduce(0) { $0 + $1.1 }, uniform: uniform)
    }

    private static func draw(_ masses: [(Int32, Double)], total: Double, uniform: Double) -> Int32 {
        let sorted = masses.sorted { $0.0 < $1.0 }
        var remaining = uniform * total
        for (token, mass) in sorted {
            remaining -= mass
            if remaining < 0 { return token }
        }
        return sorted.last?.0 ?? 0
    }
}
