import AttentionAnalysis
import Llama

/// Chooses the anchors of the `attention-anchor` strategy: the spans of the generation so far that the
/// model's global heads keep attending back to (highest FAI), widened to whole words.
///
/// Exists so that the decoder can steer toward what the model itself treats as load-bearing (a number
/// it computed, a quantity's name) instead of toward a fixed part of the text such as the current plan.
public enum AttentionAnchors {
    /// Up to `count` spans of `generated` (indices into it), best first by FAI, each at most
    /// `maxTokens` tokens, none overlapping `excluded` (text the decoder wrote itself, such as
    /// "Plan 2:") and none without a letter or digit (punctuation and operators are not anchors).
    /// `metrics` covers a prefix of `generated`.
    public static func spans(metrics: AttentionMetrics, pieces: [String], excluded: [Range<Int>], count: Int,
                             maxTokens: Int = 6) -> [Range<Int>]
    {
        let n = min(metrics.count, pieces.count)
        guard count > 0, n > 0 else { return [] }
        var blocked = [Bool](repeating: false, count: n)
        for range in excluded {
            for index in range where index < n { blocked[index] = true }
        }
        func isBlank(_ index: Int) -> Bool { pieces[index].allSatisfy(\.isWhitespace) }
        func hasWord(_ index: Int) -> Bool { pieces[index].contains { $0.isLetter || $0.isNumber } }
        func startsWord(_ index: Int) -> Bool { pieces[index].first.map(\.isWhitespace) ?? true }
        let candidates = (0..<n).filter { metrics.faiDefined[$0] && !blocked[$0] && hasWord($0) }
            .sorted { metrics.fai[$0] != metrics.fai[$1] ? metrics.fai[$0] > metrics.fai[$1] : $0 < $1 }
        var chosen: [Range<Int>] = []
        for index in candidates {
            if chosen.count >= count { break }
            if chosen.contains(where: { $0.contains(index) }) { continue }
            // Widen to the word: back to the token that starts it, forward to the next word's start.
            var lower = index
            while lower > 0, !startsWord(lower), !blocked[lower - 1], !isBlank(lower - 1), index - lower + 1 < maxTokens {
                lower -= 1
            }
            // A lone space token before the word (how some tokenizers split " 12") belongs to it.
            if lower > 0, pieces[lower - 1] == " ", !blocked[lower - 1] { lower -= 1 }
            var upper = index + 1
            while upper < n, !startsWord(upper), !blocked[upper], !pieces[upper].contains(where: \.isNewline),
                upper - lower < maxTokens
            {
                upper += 1
            }
            let span = lower..<upper
            if chosen.contains(where: { $0.overlaps(span) }) { continue }
            chosen.append(span)
        }
        return chosen
    }

    /// `tokens` with every span replaced by `placeholder` (spans sorted, non-overlapping).
    public static func masking(_ tokens: ArraySlice<LlamaToken>, spans: [Range<Int>], placeholder: [LlamaToken]) -> [LlamaToken] {
        var output: [LlamaToken] = []
        output.reserveCapacity(tokens.count)
        var cursor = tokens.startIndex
        for span in spans.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            let lower = tokens.startIndex + span.lowerBound, upper = tokens.startIndex + span.upperBound
            guard lower >= cursor, upper <= tokens.endIndex else { continue }
            output.append(contentsOf: tokens[cursor..<lower])
            output.append(contentsOf: placeholder)
            cursor = upper
        }
        output.append(contentsOf: tokens[cursor...])
        return output
    }
}
