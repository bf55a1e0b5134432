/// Compares LaTeX answers (MATH) after normalising away what does not change the value:
/// `\left`/`\right`, `\dfrac`/`\tfrac`, spacing commands, `\text{}`, degrees, dollar signs, a trailing
/// period, and trailing unit words; numbers are compared by value when both sides are numeric.
public enum MathNormalizer {
    public static func equivalent(_ a: String, _ b: String) -> Bool {
        let left = normalize(a)
        let right = normalize(b)
        if left == right { return true }
        if let x = numericValue(left), let y = numericValue(right) { return abs(x - y) <= 1e-6 * max(1, abs(y)) }
        return false
    }

    public static func normalize(_ input: String) -> String {
        var text = input.trimmingSpaces
        if let boxed = AnswerExtractor.lastBoxed(in: text) { text = boxed }
        text = unwrap(text, command: "\\text{")
        text = unwrap(text, command: "\\textbf{")
        text = unwrap(text, command: "\\mathrm{")
        text = unwrap(text, command: "\\mbox{")
        let replacements: [(String, String)] = [
            ("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
            ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""), ("\\ ", ""), ("\\quad", ""),
            ("^{\\circ}", ""), ("^\\circ", ""), ("\\circ", ""), ("\\%", ""), ("%", ""), ("$", ""),
            ("\\displaystyle", ""),
        ]
        for (from, to) in replacements { text = text.replacingAll(from, with: to) }
        text = text.filter { !$0.isWhitespace }
        while text.hasSuffix(".") { text.removeLast() }
        // "x=5" → "5" when the left side is a single variable.
        if let equals = text.firstIndex(of: "="), text[..<equals].count == 1 { text = String(text[text.index(after: equals)...]) }
        // Trailing unit words such as "cm" or "dollars" after a number.
        if let last = text.lastIndex(where: { $0.isNumber || $0 == "}" }), text.index(after: last) < text.endIndex,
           text[text.index(after: last)...].allSatisfy({ $0.isLetter })
        {
            text = String(text[...last])
        }
        return text
    }

    /// The value of a plain number, a `\frac{a}{b}`, or `a/b`.
    static func numericValue(_ text: String) -> Double? {
        let cleaned = text.replacingAll(",", with: "")
        if let value = Double(cleaned) { return value }
        if cleaned.hasPrefix("\\frac{") || cleaned.hasPrefix("-\\frac{") {
            let negative = cleaned.hasPrefix("-")
            let body = cleaned.dropFirst(negative ? 7 : 6)
            let parts = body.split(separator: "}", omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[1].hasPrefix("{"), let n = Double(parts[0]), let d = Double(parts[1].dropFirst()),
                  d != 0, parts.dropFirst(2).allSatisfy(\.isEmpty) else { return nil }
            return (negative ? -1 : 1) * n / d
        }
        return AnswerExtractor.numericValue(cleaned).flatMap { cleaned.contains("/") ? $0 : nil }
    }

    /// Replaces `\command{content}` by `content`, braces balanced.
    static func unwrap(_ text: String, command: String) -> String {
        var result = text
        while let range = result.ranges(of: command).first {
            var index = range.upperBound
            var depth = 1
            while index < result.endIndex {
                if result[index] == "{" { depth += 1 }
                if result[index] == "}" {
                    depth -= 1
                    if depth == 0 { break }
                }
                index = result.index(after: index)
            }
            guard index < result.endIndex else { break }
            let content = result[range.upperBound..<index]
            result = String(result[..<range.lowerBound]) + content + String(result[result.index(after: index)...])
        }
        return result
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        return self.replacing(target, with: replacement)
    }
}
