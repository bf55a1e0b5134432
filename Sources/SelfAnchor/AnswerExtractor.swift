/// What kind of answer a question wants, which decides how it is read out of the model's text and
/// compared with a reference.
public enum TaskType: String, Sendable, CaseIterable {
    /// A number (GSM8K): thousands separators, currency, fractions and decimals handled.
    case number
    /// An option letter A–E (ARC, CommonsenseQA, AQuA).
    case choice
    /// Yes or no (StrategyQA).
    case yesno
    /// A LaTeX expression, preferably in `\boxed{}` (MATH).
    case math
    /// Free text: whatever follows `Answer:`.
    case text

    /// The sentence the prompts add so the answer comes out in a form the extractor reads.
    public var answerInstruction: String {
        switch self {
        case .number: return "End with a final line of the form \"Answer: <number>\", giving only the number."
        case .choice: return "End with a final line of the form \"Answer: <letter>\", giving only the option letter."
        case .yesno: return "End with a final line of the form \"Answer: yes\" or \"Answer: no\"."
        case .math: return "End with a final line of the form \"Answer: \\boxed{<final answer>}\"."
        case .text: return "End with a final line of the form \"Answer: <final answer>\"."
        }
    }
}

/// Reads the final answer out of generated text, per task type, and compares answers.
public enum AnswerExtractor {
    /// The extracted answer in canonical form ("18", "0.75", "B", "yes", "\frac{1}{2}"), or nil.
    ///
    /// `question`: for `choice`, the question with its options (`A. text` lines, as `eval` and the
    /// prompts write them), so that an answer naming an option's text instead of its letter
    /// ("Answer: the Sun") is read as that option's letter.
    public static func extract(_ text: String, task: TaskType, question: String? = nil) -> String? {
        let tail = textAfterLastAnswerMarker(text)
        switch task {
        case .number:
            if let tail, let number = lastNumber(in: tail) { return number }
            // No answer line: a boxed result is the model's answer even when words with numbers follow
            // it ("\(\boxed{255}\) dollars for 3 months"); otherwise the last number.
            if let boxed = lastBoxed(in: text), let number = lastNumber(in: Calculator.normalizeLaTeX(boxed)) { return number }
            return lastNumber(in: text)
        case .choice:
            let options = question.map(choiceOptions(in:)) ?? []
            if let tail {
                if let letter = firstChoiceLetter(in: tail) { return letter }
                let answerLine = tail.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? tail
                if let letter = optionNamed(in: answerLine, options: options) { return letter }
            }
            if let letter = lastExplicitChoice(in: text) { return letter }
            return conclusion(of: text).flatMap { optionNamed(in: $0, options: options) }
        case .yesno:
            if let tail, let word = yesNo(in: tail, first: true) ?? verdict(of: tail) { return word }
            return conclusion(of: text).flatMap { yesNo(in: $0, first: true) ?? verdict(of: $0) } ?? yesNo(in: text, first: false)
        case .math:
            if let boxed = lastBoxed(in: text) { return boxed }
            guard let tail else { return nil }
            let stripped = tail.trimmingSpaces.trimmingCharacters("$.")
            return stripped.isEmpty ? nil : stripped
        case .text:
            guard let tail else { return nil }
            let line = tail.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? tail
            let trimmed = line.trimmingSpaces
            return trimmed.isEmpty ? nil : trimmed
        }
    }

    /// Whether an extracted answer matches the reference for the task.
    public static func matches(_ extracted: String?, reference: String, task: TaskType) -> Bool {
        guard let extracted else { return false }
        switch task {
        case .number:
            guard let a = numericValue(extracted), let b = numericValue(lastNumber(in: reference) ?? reference) else {
                return false
            }
            return abs(a - b) <= 1e-6 * max(1, abs(b))
        case .choice:
            return extracted.uppercased() == reference.trimmingSpaces.uppercased()
        case .yesno:
            return yesNo(in: extracted, first: true) == yesNo(in: reference, first: true)
        case .math:
            return MathNormalizer.equivalent(extracted, reference)
        case .text:
            return extracted.trimmingSpaces.lowercased() == reference.trimmingSpaces.lowercased()
        }
    }

    // MARK: Pieces

    /// The extractor's patterns, as source text. `Regex` is not Sendable, so no compiled regex is shared
    /// between threads: each use compiles its own (about 0.15 ms; an extraction uses a few).
    private enum Patterns {
        static let answerMarker = #"(?i)answer\s*:"#
        static let answerIsMarker = #"(?i)answer\s+is\b"#
        static let number = #"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|-?\.\d+"#
        /// Option letters: A–H, as many as `eval` writes.
        static let letter = #"(?:^|[^A-Za-z])\(?([A-H])\)?(?![A-Za-z])"#
        static let explicitChoice = #"(?i:answer|option|choice)\s*(?:is|:)?\s*\(?([A-H])\)?(?![A-Za-z])"#
        static let optionLine = #"\s*\(?([A-H])[.):]\s+(.+)"#
        static let yesNo = #"(?i)\b(yes|no|true|false)\b"#
        static let negation =
            #"(?i)\b(not|no|never|cannot|can't|isn't|aren't|wasn't|weren't|doesn't|don't|didn't|won't|wouldn't|couldn't|shouldn't|unlikely|impossible|neither|nor)\b|n't\b"#
    }

    private static func regex(_ source: String) -> Regex<AnyRegexOutput> {
        try! Regex(source)  // the sources above are constants, checked by the tests
    }

    /// The text after the last "Answer:" (any case, optional markdown bold), nil when there is none.

    static func textAfterLastAnswerMarker(_ text: String) -> String? {
        guard let match = text.matches(of: regex(Patterns.answerMarker)).last ?? text.matches(of: regex(Patterns.answerIsMarker)).last else {
            return nil
        }
        var tail = text[match.range.upperBound...]
        while tail.first == "*" { tail.removeFirst() }
        return String(tail)
    }


    /// The last number in the text, in canonical form: separators and currency gone, fractions and
    /// decimals evaluated, integral values without a fraction part.
    static func lastNumber(in text: String) -> String? {
        let matches = text.matches(of: regex(Patterns.number))
        guard let last = matches.last else { return nil }
        let raw = String(text[last.range])
        guard let value = numericValue(raw) else { return nil }
        return canonical(value)
    }

    /// The numeric value of "1,234.5", "$18", "-3/4", ".5".
    public static func numericValue(_ raw: String) -> Double? {
        let cleaned = raw.filter { !",$ ".contains($0) }
        if let slash = cleaned.firstIndex(of: "/") {
            guard let numerator = Double(cleaned[..<slash]), let denominator = Double(cleaned[cleaned.index(after: slash)...]),
                  denominator != 0 else { return nil }
            return numerator / denominator
        }
        return Double(cleaned)
    }

    static func canonical(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        var text = String(value)
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }


    static func firstChoiceLetter(in text: String) -> String? {
        guard let match = text.firstMatch(of: regex(Patterns.letter)), let letter = match.output[1].substring else { return nil }
        return String(letter)
    }

    /// The options of a multiple-choice question: its `A. text` (or `A) text`) lines, in order.
    static func choiceOptions(in question: String) -> [(letter: String, text: String)] {
        let optionLine = regex(Patterns.optionLine)
        return question.split(separator: "\n").compactMap { line in
            guard let match = line.wholeMatch(of: optionLine), let letter = match.output[1].substring,
                  let text = match.output[2].substring else { return nil }
            let normalized = normalizedWords(String(text))
            return normalized.isEmpty ? nil : (String(letter), normalized)
        }
    }

    /// The letter of the one option whose text the answer names ("Answer: a mirror." → B). When several
    /// options' texts occur, the most specific one wins if the others are part of it, word for word
    /// ("water vapor" over "water", but not "concatenate" over "cat"); otherwise, or when none occurs, nil.
    static func optionNamed(in answer: String, options: [(letter: String, text: String)]) -> String? {
        guard !options.isEmpty else { return nil }
        /// Whether `part`'s words occur, as whole words, in `whole` (both normalized).
        func hasWords(_ whole: String, _ part: String) -> Bool { (" " + whole + " ").contains(" " + part + " ") }
        let words = normalizedWords(answer)
        let named = options.filter { hasWords(words, $0.text) }
        let specific = named.filter { option in !named.contains { $0.text != option.text && hasWords($0.text, option.text) } }
        let letters = Set(specific.map(\.letter))
        return letters.count == 1 ? letters.first : nil
    }

    /// Lower-case words and digits separated by single spaces: punctuation and case do not decide a match.
    static func normalizedWords(_ text: String) -> String {
        text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).joined(separator: " ")
    }

    static func lastExplicitChoice(in text: String) -> String? {
        guard let match = text.matches(of: regex(Patterns.explicitChoice)).last,
              let letter = match.output[1].substring else { return nil }
        return String(letter)
    }


    static func yesNo(in text: String, first: Bool) -> String? {
        let matches = text.matches(of: regex(Patterns.yesNo))
        guard let match = first ? matches.first : matches.last, let word = match.output[1].substring else { return nil }
        switch word.lowercased() {
        case "yes", "true": return "yes"
        default: return "no"
        }
    }

    /// The last sentence that draws the conclusion ("Therefore, …", "So …", "In conclusion, …"), if any.
    static func conclusion(of text: String) -> String? {
        let sentences = text.split(whereSeparator: { ".!?\n".contains($0) }).map { String($0).trimmingSpaces }
            .filter { !$0.isEmpty }
        return sentences.last { sentence in
            let lower = sentence.lowercased().drop { !$0.isLetter }
            return conclusionMarkers.contains { lower.hasPrefix($0) }
        }
    }

    static let conclusionMarkers = ["therefore", "thus", "so ", "so,", "hence", "in conclusion", "in summary", "overall",
                                    "in short", "the answer is", "this means", "yes", "no,", "no "]


    /// A plain-language verdict read as yes or no: a sentence with a negation ("it is not bad to have
    /// lactic acid", "he could not have") is a no, one without is a yes. Nil for text without a letter.
    static func verdict(of sentence: String) -> String? {
        guard sentence.contains(where: \.isLetter) else { return nil }
        return sentence.contains(regex(Patterns.negation)) ? "no" : "yes"
    }

    /// The content of the last `\boxed{…}` (or `\fbox{…}`), braces balanced.
    static func lastBoxed(in text: String) -> String? {
        let markers = ["\\boxed{", "\\fbox{"]
        var best: String.Index?
        var markerLength = 0
        for marker in markers {
            if let range = text.ranges(of: marker).last, best.map({ range.lowerBound > $0 }) ?? true {
                best = range.lowerBound
                markerLength = marker.count
            }
        }
        guard let start = best else { return nil }
        var index = text.index(start, offsetBy: markerLength)
        let contentStart = index
        var depth = 1
        while index < text.endIndex {
            switch text[index] {
            case "{": depth += 1
            case "}":
                depth -= 1
                if depth == 0 { return String(text[contentStart..<index]).trimmingSpaces }
            default: break
            }
            index = text.index(after: index)
        }
        return nil
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and line breaks.
    public var trimmingSpaces: String { trimmingCharacters(" \t\n\r") }

    /// The string without leading and trailing characters from `set`.
    public func trimmingCharacters(_ set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
