/// Reads the `Plan k:` / `Step k:` / `Answer:` line format, tolerating what small models do to it:
/// markdown emphasis and heading marks, "Final answer", missing numbers, "." or ")" instead of ":".
///
/// The decoder uses `lineStart` to decide, from the first token of a new line, whether the model is
/// moving on to a plan, to the answer, or continuing its step; `parse` splits a finished text into
/// sections (for baseline outputs and saved results).
public enum StepParser {
    /// A line header.
    public enum Header: Equatable, Sendable {
        case plan(Int?)
        case step(Int?)
        case answer
    }

    /// One section of a parsed text: a header and everything up to the next header.
    public struct Section: Equatable, Sendable {
        public var header: Header?
        public var text: String
    }

    /// What a new line starting with `prefix` is: a plan or step header, the answer, a numbered or
    /// bulleted list item (the next item of an upfront plan), or more of the current line's text.
    public enum LineStart: Equatable, Sendable { case plan, answer, item, continuation }

    /// The header at the start of a line, and the rest of the line after it.
    public static func header(of line: some StringProtocol) -> (header: Header, rest: String)? {
        var text = Substring(line).drop(while: { $0 == " " || $0 == "\t" || $0 == "*" || $0 == "#" || $0 == "-" || $0 == ">" })
        let lower = text.lowercased()
        let kinds: [(String, (Int?) -> Header)] = [
            ("final answer", { _ in .answer }), ("answer", { _ in .answer }),
            ("plan", { .plan($0) }), ("step", { .step($0) }),
        ]
        for (word, make) in kinds where lower.hasPrefix(word) {
            text = text.dropFirst(word.count)
            var number: Int?
            let afterWord = text.drop(while: { $0 == " " })
            let digits = afterWord.prefix(while: \.isNumber)
            if !digits.isEmpty {
                number = Int(digits)
                text = afterWord.dropFirst(digits.count)
            }
            text = text.drop(while: { $0 == "*" || $0 == " " })
            guard let separator = text.first, ":.)".contains(separator) else { return nil }
            // "Step 1." is a header; "Answer." alone is not.
            if separator != ":" && number == nil { return nil }
            let rest = text.dropFirst().drop(while: { $0 == "*" || $0 == " " })
            return (make(number), String(rest))
        }
        return nil
    }

    /// Splits a text at header lines. Text before the first header is a section with no header.
    public static func parse(_ text: String) -> [Section] {
        var sections: [Section] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let (header, rest) = header(of: line) {
                sections.append(Section(header: header, text: rest))
            } else if sections.isEmpty {
                if !line.allSatisfy(\.isWhitespace) { sections.append(Section(header: nil, text: String(line))) }
            } else {
                sections[sections.count - 1].text += "\n" + line
            }
        }
        return sections.map { Section(header: $0.header, text: $0.text.trimmingSpaces) }
    }

    /// Classifies a line by its first token's text: a header word (or its beginning) starts a plan
    /// or the answer; a blank line ends the step; a digit or a bullet starts a list item; anything
    /// else continues the line before.
    public static func lineStart(_ prefix: String) -> LineStart {
        let word = prefix.lowercased().filter { !$0.isWhitespace && !"*#-".contains($0) }
        if word.first?.isNumber == true { return .item }
        if word.isEmpty {
            if prefix.contains("\n") { return .plan }
            let mark = prefix.filter { !$0.isWhitespace }
            return mark == "-" || mark == "*" ? .item : .continuation
        }
        if word.hasPrefix("answer") || word.hasPrefix("final") || (word.count >= 3 && "answer".hasPrefix(word)) {
            return .answer
        }
        if word.hasPrefix("plan") || word.hasPrefix("step")
            || (word.count >= 2 && ("plan".hasPrefix(word) || "step".hasPrefix(word)))
        {
            return .plan
        }
        return .continuation
    }
}
