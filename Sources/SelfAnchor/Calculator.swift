/// Exact arithmetic for the decoder (`calculator` option): when the text the model has written ends in
/// an arithmetic expression followed by `=`, `Calculator.result(endingWith:)` gives the exact value,
/// which the decoder writes for the model before it continues. GSM8K's authors decoded with such a
/// calculator; small models reason right and then add 20 + 80 + 160 to 460.
///
/// What counts as an expression: numbers (`12`, `0.6`, `80,000`, `$2`, `150%`), `+ - − * × x ÷ /`,
/// parentheses, and LaTeX's `\times`, `\cdot`, `\div`, `\frac{a}{b}`, `\left(`/`\right)`, `\$`. Units are read
/// past: words right after a number up to the next operator (`16 eggs - 7 eggs`, `20 \text{ chickens}`,
/// `$2/\text{egg}`). The longest tail of the text before `=` that is a whole expression with at least one
/// operator is evaluated; anything else before `=` (a name, `x = 5`, words between numbers) is left to
/// the model. So is an expression with parentheses or with both kinds of operators (`12 + 5 × 3`):
/// models write those out a level at a time (`= 12 + 15 = 27`), and a value written after the first
/// `=` cut that short (measured on gsm8k-dev: the model then went on summing the parts again); the
/// exception is a parenthesized sum times or divided by a number (`(48 + 42) / 2`, an average), which
/// models do not expand and often get wrong (`sumTimesNumber`). Also left to the model are
/// an expression joined by an operator to something else (`x + 5 - 3 =` is not 2) and a sum of
/// different units (`90 minutes + 300 seconds =` is not 390): cot on gsm8k-dev lost an answer to each.
public enum Calculator {
    /// Whether a request that does not say gets the calculator: on for number answers, where it helped
    /// both cot and self-anchor on gsm8k-dev (README, "The calculator on by default"); off for the other
    /// tasks, where it was not measured.
    public static func isDefault(for task: TaskType) -> Bool { task == .number }

    /// What the calculator evaluated and what it inserts.
    public struct Calculation: Sendable, Equatable {
        /// The expression as the model wrote it.
        public var expression: String
        /// The value as written after `=` ("$" when the expression is money): "12", "$3", "0.75".
        public var value: String
    }

    /// The calculation for a text that ends in `=` (nothing may follow it), or nil when the text before
    /// the `=` does not end in an arithmetic expression (or it divides by zero or overflows).
    public static func result(endingWith text: String) -> Calculation? {
        guard text.hasSuffix("="), !text.hasSuffix("==") else { return nil }
        let before = text.dropLast()
        if let last = before.last, "<>!=:".contains(last) { return nil }
        // Only the current line, and within it, only what follows the last other `=` (chains: a = b = …).
        let line = before.split(separator: "\n", omittingEmptySubsequences: false).last ?? before
        var source = line.split(separator: "=", omittingEmptySubsequences: false).last ?? line
        if !line.contains("=") {
            // A list marker ("- 16 - 3 =", "* 4 × 5 =") is not a sign or an operator.
            let trimmed = source.drop { $0 == " " || $0 == "\t" }
            if let marker = trimmed.first, "-*•".contains(marker), trimmed.dropFirst().first == " " {
                source = trimmed.dropFirst(2)
            }
        }
        let (tokens, units) = droppingUnits(tokenize(normalizeLaTeX(String(source))))
        guard !tokens.isEmpty else { return nil }
        // The longest tail of tokens that parses as a whole expression with an operator.
        for start in tokens.indices {
            let tail = Array(tokens[start...])
            guard tail.contains(where: \.isOperator), tail.last?.isOperand == true else { continue }
            var parser = Parser(tokens: tail)
            guard let value = parser.parseExpression(), parser.atEnd else { continue }
            // An operator right before the tail joins it to something that is not a number (`x + 5 - 3 =`):
            // the value of the tail alone would be wrong.
            if start > 0, tokens[start - 1].isOperator { return nil }
            // A sum of different units (`90 minutes + 300 seconds`) needs a conversion the calculator cannot see.
            func unitsDiffer(_ range: Range<Int>) -> Bool { Set(units[range].compactMap { $0 }).count > 1 }
            let ratio: Bool
            if let split = sumTimesNumber(tail) {
                // `(48 + 42) / 2`: each sum in one unit.
                if split.sums.contains(where: { unitsDiffer(($0.lowerBound + start)..<($0.upperBound + start)) }) { return nil }
                ratio = split.ratio
            } else {
                // Other parentheses, or + and × together: the model writes these out a level at a time (see above).
                var additive = false
                var multiplicative = false
                for (index, token) in tail.enumerated() {
                    guard case .op(let op) = token else { continue }
                    if "*×÷/".contains(op) {
                        multiplicative = true
                    } else if index > 0, tail[index - 1].isOperand {
                        additive = true  // a binary + or −, not a sign
                    }
                }
                if tail.contains(.open) || (additive && multiplicative) { return nil }
                if additive, unitsDiffer(start..<tokens.count) { return nil }
                // A ratio of two amounts ($10 / $2 = 5).
                ratio = tail.filter(\.hasCurrency).count >= 2 && tail.contains { $0 == .op("/") || $0 == .op("÷") }
            }
            let expression = tail.map(\.text).joined(separator: " ")
            // Money in, money out ($2 × 9 = $18), except a ratio.
            let amounts = tail.filter(\.hasCurrency).count
            let currency = amounts > 0 && !ratio ? "$" : ""
            // In LaTeX the sign is written \$.
            let sign = currency.isEmpty ? "" : source.contains("\\$") ? "\\$" : "$"
            // Thousands separators when the model wrote them.
            let grouped = tail.contains { $0.text.contains(",") }
            return Calculation(expression: expression, value: sign + value.decimalText(grouped: grouped))
        }
        return nil
    }

    /// The one shape with parentheses the calculator evaluates: a parenthesized sum and a number (or two
    /// sums) joined by one `×` or `÷`, as in `(80 + 60 + 100) ÷ 3` or `2 × (15 + 5)`. Models do not write
    /// these out further, and get them wrong: on gsm8k-dev, 4 of the 6 averages written so had the sum
    /// or a wrong value after `=` ("(48 + 42) / 2 = 90"). `sums` are the ranges of the sums' insides;
    /// `ratio`: money divided by money (a count, not an amount).
    static func sumTimesNumber(_ tail: [Token]) -> (sums: [Range<Int>], ratio: Bool)? {
        /// One operand from `index`: a number, or `(` numbers joined by + and − `)`. Returns its end.
        func operand(at index: Int) -> (end: Int, sum: Range<Int>?)? {
            guard index < tail.count else { return nil }
            if case .number = tail[index] { return (index + 1, nil) }
            guard tail[index] == .open, let close = tail[index...].firstIndex(of: .close) else { return nil }
            let inside = (index + 1)..<close
            guard !inside.isEmpty else { return nil }
            for (offset, token) in tail[inside].enumerated() {
                switch token {
                case .number: guard offset % 2 == 0 else { return nil }
                case .op(let op) where "+-−".contains(op): guard offset % 2 == 1 else { return nil }
                default: return nil
                }
            }
            guard inside.count % 2 == 1 else { return nil }
            return (close + 1, inside.count > 1 ? inside : nil)
        }
        guard let left = operand(at: 0), left.end < tail.count, case .op(let op) = tail[left.end], "*×÷/".contains(op),
              let right = operand(at: left.end + 1), right.end == tail.count
        else { return nil }
        let sums = [left.sum, right.sum].compactMap { $0 }
        guard !sums.isEmpty else { return nil }
        let ratio = "÷/".contains(op) && tail[..<left.end].contains(where: \.hasCurrency)
            && tail[(left.end + 1)...].contains(where: \.hasCurrency)
        return (sums, ratio)
    }

    // MARK: Tokens

    enum Token: Equatable {
        case number(Rational, text: String, currency: Bool)
        case op(Character)
        case open, close
        /// Anything else: it ends the expression (only tokens after it can form one).
        case other(String)

        var isOperator: Bool { if case .op = self { return true } else { return false } }
        var isOperand: Bool {
            switch self {
            case .number, .close: return true
            default: return false
            }
        }
        var hasCurrency: Bool { if case .number(_, _, let currency) = self { return currency } else { return false } }
        var text: String {
            switch self {
            case .number(_, let text, _): return text
            case .op(let op): return String(op)
            case .open: return "("
            case .close: return ")"
            case .other(let text): return text
            }
        }
    }

    /// LaTeX operators as plain characters; `\frac{a}{b}` as `(a)/(b)`.
    static func normalizeLaTeX(_ text: String) -> String {
        var text = text
        text = text.replacing(#/\\(?:text|mathrm|textrm|mbox)\{([^{}]*)\}/#) { " " + $0.output.1 + " " }
        for (latex, plain) in [("\\times", "×"), ("\\cdot", "×"), ("\\div", "÷"), ("\\left(", "("), ("\\right)", ")"),
                               ("\\$", "$"), ("\\%", "%"), ("\\,", "")] {
            text = text.replacing(latex, with: plain)
        }
        while let range = text.firstRange(of: "\\frac{") {
            // \frac{a}{b} with brace-free a and b; anything more complex stays as it is (and stops the scan).
            let rest = text[range.upperBound...]
            guard let close = rest.firstIndex(of: "}"), rest[rest.index(after: close)...].hasPrefix("{"),
                  let numerator = Optional(rest[..<close]), !numerator.contains("{")
            else { break }
            let denominatorStart = rest.index(close, offsetBy: 2)
            guard let denominatorEnd = rest[denominatorStart...].firstIndex(of: "}") else { break }
            let denominator = rest[denominatorStart..<denominatorEnd]
            let plain = { (part: Substring) in part.allSatisfy { $0.isNumber || $0 == "." || $0 == "," || $0 == " " } }
            text.replaceSubrange(range.lowerBound...denominatorEnd,
                                 with: plain(numerator) && plain(denominator) ? "\(numerator)/\(denominator)" : "(\(numerator))/(\(denominator))")
        }
        return text
    }

    /// Removes units: a run of words right after a number (or `)`) that ends at an operator, `)` or the
    /// end, and `/ word` (per unit) in the same places. Words anywhere else stay and stop the expression.
    /// `units[i]` is the unit removed after `tokens[i]` (lowercased, singular), nil where there was none.
    static func droppingUnits(_ tokens: [Token]) -> (tokens: [Token], units: [String?]) {
        func isWord(_ token: Token) -> Bool {
            guard case .other(let text) = token else { return false }
            return text.allSatisfy { $0.isLetter || "/'’-.,:;".contains($0) } && text.contains(where: \.isLetter)
        }
        func endsUnit(_ index: Int) -> Bool {
            guard index < tokens.count else { return true }
            switch tokens[index] {
            case .op, .close: return true
            default: return false
            }
        }
        /// "Eggs," and "egg" alike.
        func unit(_ words: ArraySlice<Token>) -> String {
            words.map { word in
                var letters = word.text.lowercased().filter(\.isLetter)
                if letters.count > 2, letters.hasSuffix("s") { letters.removeLast() }
                return letters
            }.joined(separator: " ")
        }
        var result: [Token] = []
        var units: [String?] = []
        /// Adds a unit to the last operand's (`$2/egg`: none, then "per egg").
        func attach(_ unit: String) {
            units[units.count - 1] = [units[units.count - 1], unit].compactMap { $0 }.joined(separator: " ")
        }
        var i = 0
        while i < tokens.count {
            let token = tokens[i]
            if isWord(token), result.last?.isOperand == true {
                var j = i
                while j < tokens.count, isWord(tokens[j]) { j += 1 }
                if endsUnit(j) {
                    attach(unit(tokens[i..<j]))
                    i = j
                    continue
                }
            }
            if case .op(let op) = token, op == "/", result.last?.isOperand == true, i + 1 < tokens.count, isWord(tokens[i + 1]) {
                var j = i + 1
                while j < tokens.count, isWord(tokens[j]) { j += 1 }
                if endsUnit(j) {
                    attach("per " + unit(tokens[(i + 1)..<j]))
                    i = j
                    continue
                }
            }
            result.append(token)
            units.append(nil)
            i += 1
        }
        return (result, units)
    }

    static func tokenize(_ text: String) -> [Token] {
        var tokens: [Token] = []
        let characters = Array(text)
        var i = 0
        while i < characters.count {
            let c = characters[i]
            if c == " " || c == "\t" || c == "\u{00A0}" {
                i += 1
            } else if c.isASCII && c.isNumber || c == "$" || (c == "." && i + 1 < characters.count && characters[i + 1].isASCII && characters[i + 1].isNumber) {
                var j = i
                var currency = false
                if characters[j] == "$" {
                    currency = true
                    j += 1
                    while j < characters.count && characters[j] == " " { j += 1 }
                }
                var digits = ""
                // Integer part, with thousands separators only in groups of three.
                while j < characters.count {
                    let d = characters[j]
                    if d.isASCII && d.isNumber {
                        digits.append(d)
                        j += 1
                    } else if d == ",", !digits.isEmpty, j + 4 <= characters.count,
                              characters[(j + 1)..<(j + 4)].allSatisfy({ $0.isASCII && $0.isNumber }),
                              j + 4 == characters.count || !(characters[j + 4].isASCII && characters[j + 4].isNumber)
                    {
                        j += 1
                    } else {
                        break
                    }
                }
                var fraction = ""
                if j + 1 < characters.count, characters[j] == ".", characters[j + 1].isASCII && characters[j + 1].isNumber {
                    j += 1
                    while j < characters.count, characters[j].isASCII && characters[j].isNumber {
                        fraction.append(characters[j])
                        j += 1
                    }
                }
                guard !(digits.isEmpty && fraction.isEmpty), let value = Rational(integer: digits, fraction: fraction) else {
                    tokens.append(.other(String(characters[i..<max(j, i + 1)])))
                    i = max(j, i + 1)
                    continue
                }
                var number = value
                var end = j
                if j < characters.count, characters[j] == "%" {
                    guard let percent = number.divided(by: Rational(100)) else { return tokens + [.other("%")] }
                    number = percent
                    end = j + 1
                }
                // A number glued to letters ("3rd", "2x") is not a number.
                if end < characters.count, characters[end].isLetter, characters[end] != "x" {
                    tokens.append(.other(String(characters[i..<end])))
                    i = end
                    continue
                }
                tokens.append(.number(number, text: String(characters[i..<end]), currency: currency))
                i = end
            } else if "+-−*×÷/".contains(c) {
                tokens.append(.op(c))
                i += 1
            } else if (c == "x" || c == "X"), tokens.last?.isOperand == true,
                      i + 1 < characters.count, characters[i + 1] == " " || characters[i + 1].isNumber || characters[i + 1] == "$"
            {
                tokens.append(.op("×"))
                i += 1
            } else if c == "(" {
                tokens.append(.open)
                i += 1
            } else if c == ")" {
                tokens.append(.close)
                i += 1
            } else {
                var j = i + 1
                while j < characters.count, !" \t()".contains(characters[j]), !characters[j].isNumber { j += 1 }
                tokens.append(.other(String(characters[i..<j])))
                i = j
            }
        }
        return tokens
    }

    // MARK: Parsing

    /// expression := term (("+" | "-") term)*;  term := factor (("×" | "/") factor)*;
    /// factor := "-" factor | number | "(" expression ")"
    struct Parser {
        let tokens: [Token]
        var position = 0
        var atEnd: Bool { position == tokens.count }

        init(tokens: [Token]) { self.tokens = tokens }

        mutating func parseExpression() -> Rational? {
            guard var value = parseTerm() else { return nil }
            while position < tokens.count, case .op(let op) = tokens[position], "+-−".contains(op) {
                position += 1
                guard let rhs = parseTerm() else { return nil }
                guard let next = op == "+" ? value.plus(rhs) : value.minus(rhs) else { return nil }
                value = next
            }
            return value
        }

        mutating func parseTerm() -> Rational? {
            guard var value = parseFactor() else { return nil }
            while position < tokens.count, case .op(let op) = tokens[position], "*×÷/".contains(op) {
                position += 1
                guard let rhs = parseFactor() else { return nil }
                guard let next = "*×".contains(op) ? value.times(rhs) : value.divided(by: rhs) else { return nil }
                value = next
            }
            return value
        }

        mutating func parseFactor() -> Rational? {
            guard position < tokens.count else { return nil }
            switch tokens[position] {
            case .op(let op) where op == "-" || op == "−":
                position += 1
                return parseFactor().flatMap { Rational(0).minus($0) }
            case .number(let value, _, _):
                position += 1
                return value
            case .open:
                position += 1
                guard let value = parseExpression(), position < tokens.count, tokens[position] == .close else { return nil }
                position += 1
                return value
            default:
                return nil
            }
        }
    }
}

/// An exact fraction of 64-bit integers; every operation returns nil instead of overflowing.
struct Rational: Equatable {
    let numerator: Int
    let denominator: Int

    init(_ value: Int) {
        numerator = value
        denominator = 1
    }

    init?(numerator: Int, denominator: Int) {
        guard denominator != 0 else { return nil }
        let divisor = Rational.gcd(abs(numerator), abs(denominator))
        let sign = denominator < 0 ? -1 : 1
        self.numerator = sign * numerator / max(divisor, 1)
        self.denominator = sign * denominator / max(divisor, 1)
    }

    /// "12" and "5" → 12.5.
    init?(integer: String, fraction: String) {
        guard integer.count + fraction.count <= 17 else { return nil }
        var scale = 1
        for _ in 0..<fraction.count { scale *= 10 }
        guard let whole = Int(integer.isEmpty ? "0" : integer), let part = Int(fraction.isEmpty ? "0" : fraction) else { return nil }
        self.init(numerator: whole * scale + part, denominator: scale)
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    func plus(_ other: Rational) -> Rational? {
        let (a, o1) = numerator.multipliedReportingOverflow(by: other.denominator)
        let (b, o2) = other.numerator.multipliedReportingOverflow(by: denominator)
        let (n, o3) = a.addingReportingOverflow(b)
        let (d, o4) = denominator.multipliedReportingOverflow(by: other.denominator)
        guard !(o1 || o2 || o3 || o4) else { return nil }
        return Rational(numerator: n, denominator: d)
    }

    func minus(_ other: Rational) -> Rational? {
        plus(Rational(numerator: -other.numerator, denominator: other.denominator)!)
    }

    func times(_ other: Rational) -> Rational? {
        let (n, o1) = numerator.multipliedReportingOverflow(by: other.numerator)
        let (d, o2) = denominator.multipliedReportingOverflow(by: other.denominator)
        guard !(o1 || o2) else { return nil }
        return Rational(numerator: n, denominator: d)
    }

    func divided(by other: Rational) -> Rational? {
        guard other.numerator != 0 else { return nil }
        return times(Rational(numerator: other.denominator, denominator: other.numerator)!)
    }

    /// The value as a decimal: exact when it terminates within 6 places ("0.125"), else rounded to 4
    /// ("3.3333"); never "12.0". `grouped`: thousands separators in the whole part ("130,000").
    func decimalText(grouped: Bool = false) -> String {
        var d = denominator
        while d % 2 == 0 { d /= 2 }
        while d % 5 == 0 { d /= 5 }
        let places = d == 1 ? (0...6).first { p in
            var scale = 1
            for _ in 0..<p { scale *= 10 }
            return scale % denominator == 0
        } : nil
        let shown = places ?? 4
        var scale = 1
        for _ in 0..<shown { scale *= 10 }
        let negative = numerator < 0
        let magnitude = abs(numerator)
        // Round half away from zero at `shown` places.
        let (scaled, overflow) = magnitude.multipliedReportingOverflow(by: scale)
        let units: Int
        if overflow {
            units = Int((Double(magnitude) / Double(denominator) * Double(scale)).rounded())
        } else {
            units = (scaled + denominator / 2) / denominator
        }
        let whole = units / scale
        var fraction = String(units % scale)
        fraction = String(repeating: "0", count: max(0, shown - fraction.count)) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        var wholeText = String(whole)
        if grouped {
            var digits = Array(wholeText)
            var index = digits.count - 3
            while index > 0 {
                digits.insert(",", at: index)
                index -= 3
            }
            wholeText = String(digits)
        }
        let text = fraction.isEmpty ? wholeText : "\(wholeText).\(fraction)"
        return negative && units != 0 ? "-" + text : text
    }
}
