import SelfAnchor
import TextFiles

/// One row of the comparison table.
public struct StrategySummary: Sendable, Equatable {
    public var strategy: String
    public var n: Int
    public var correct: Int
    public var interval: (low: Double, high: Double)
    public var tokensPerSecond: Double
    public var meanTokens: Double
    public var meanSteps: Double
    /// What always giving the most common answer scores on the same items (yes/no and multiple choice).
    public var constantAccuracy: Double? = nil
    public var accuracy: Double { n > 0 ? Double(correct) / Double(n) : 0 }

    public static func == (a: Self, b: Self) -> Bool {
        a.strategy == b.strategy && a.n == b.n && a.correct == b.correct
    }
}

/// Self-Anchor against one baseline on the items both answered.
public struct PairedComparison: Sendable, Equatable {
    public var baseline: String
    public var items: Int
    /// Items Self-Anchor got right and the baseline wrong, and the other way round.
    public var onlyTarget: Int
    public var onlyBaseline: Int
    public var pValue: Double
}

/// The floor every accuracy on a yes/no or multiple-choice set is read against: always giving the
/// answer that is most common among the run's items ("no" on StrategyQA scores 56% on its dev split).
public struct ConstantBaseline: Sendable, Equatable {
    /// The most common reference (ties: the one first in the data).
    public var answer: String
    /// Reference answers by item id.
    public var references: [String: String]

    /// Nil unless every item is yes/no or multiple choice.
    public init?(items: [EvalItem]) {
        guard !items.isEmpty, items.allSatisfy({ $0.task == .yesno || $0.task == .choice }) else { return nil }
        var counts: [String: Int] = [:]
        var order: [String] = []
        for item in items {
            let answer = Self.normalized(item.reference, task: item.task)
            if counts[answer] == nil { order.append(answer) }
            counts[answer, default: 0] += 1
        }
        answer = order.max { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && order.firstIndex(of: $0)! > order.firstIndex(of: $1)!) }!
        references = Dictionary(items.map { ($0.id, Self.normalized($0.reference, task: $0.task)) }) { first, _ in first }
    }

    static func normalized(_ reference: String, task: TaskType) -> String {
        task == .yesno ? (AnswerExtractor.extract(reference, task: .yesno) ?? reference.lowercased()) : reference.uppercased()
    }

    /// The constant answer's accuracy on these items.
    public func accuracy(on ids: [String]) -> Double {
        guard !ids.isEmpty else { return 0 }
        return Double(ids.filter { references[$0] == answer }.count) / Double(ids.count)
    }
}

/// The numbers and pictures `selfanchor eval` prints and writes.
public enum Report {
    public static func summarize(_ records: [EvalRecord], strategies: [String], constant: ConstantBaseline? = nil)
        -> [StrategySummary]
    {
        strategies.map { strategy in
            let rows = records.filter { $0.strategy == strategy }
            let correct = rows.filter(\.correct).count
            let tokens = rows.reduce(0) { $0 + $1.predictedN }
            let milliseconds = rows.reduce(0.0) { $0 + $1.predictedMs }
            return StrategySummary(
                strategy: strategy, n: rows.count, correct: correct,
                interval: Statistics.wilson(successes: correct, trials: rows.count),
                tokensPerSecond: milliseconds > 0 ? Double(tokens) * 1000 / milliseconds : 0,
                meanTokens: rows.isEmpty ? 0 : Double(tokens) / Double(rows.count),
                meanSteps: rows.isEmpty ? 0 : Double(rows.reduce(0) { $0 + $1.steps }) / Double(rows.count),
                constantAccuracy: constant?.accuracy(on: rows.map(\.id)))
        }
    }

    public static func compare(_ records: [EvalRecord], target: String, baselines: [String]) -> [PairedComparison] {
        var byItem: [String: [String: Bool]] = [:]
        for record in records { byItem[record.id, default: [:]][record.strategy] = record.correct }
        return baselines.filter { $0 != target }.map { baseline in
            var onlyTarget = 0
            var onlyBaseline = 0
            var items = 0
            for outcomes in byItem.values {
                guard let t = outcomes[target], let b = outcomes[baseline] else { continue }
                items += 1
                if t && !b { onlyTarget += 1 }
                if b && !t { onlyBaseline += 1 }
            }
            return PairedComparison(baseline: baseline, items: items, onlyTarget: onlyTarget, onlyBaseline: onlyBaseline,
                                    pValue: Statistics.mcnemarExact(b: onlyTarget, c: onlyBaseline))
        }
    }

    static func percent(_ value: Double) -> String { String(format1(value * 100)) + "%" }

    static func format1(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) + ".0" : String(rounded)
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }

    /// The table printed on stdout.
    public static func table(_ summaries: [StrategySummary], _ comparisons: [PairedComparison], target: String,
                             constant: ConstantBaseline? = nil) -> String
    {
        let width = max(12, (summaries.map(\.strategy.count).max() ?? 0) + 2)
        let constantHeader = constant.map { "always \($0.answer)" }
        var lines = [
            pad("strategy", width) + pad("n", 6, right: true) + pad("accuracy", 10, right: true) + "  " + pad("95% CI", 17)
                + (constantHeader.map { pad($0, max(10, $0.count + 2), right: true) } ?? "")
                + pad("tok/s", 8, right: true) + pad("mean tokens", 13, right: true) + pad("mean steps", 12, right: true),
        ]
        for row in summaries {
            lines.append(pad(row.strategy, width) + pad(String(row.n), 6, right: true) + pad(percent(row.accuracy), 10, right: true)
                + "  " + pad("[\(percent(row.interval.low)), \(percent(row.interval.high))]", 17)
                + (constantHeader.map { pad(percent(row.constantAccuracy ?? 0), max(10, $0.count + 2), right: true) } ?? "")
                + pad(format1(row.tokensPerSecond), 8, right: true) + pad(format1(row.meanTokens), 13, right: true)
                + pad(format1(row.meanSteps), 12, right: true))
        }
        if let constant {
            lines.append("(always \(constant.answer): what always giving the most common answer scores on the same items)")
        }
        if !comparisons.isEmpty {
            lines.append("")
            lines.append("\(target) vs baseline (paired, exact McNemar): items, \(target) only right, baseline only right, p")
            for comparison in comparisons {
                lines.append("  vs " + pad(comparison.baseline, width - 2) + pad(String(comparison.items), 6, right: true)
                    + pad(String(comparison.onlyTarget), 8, right: true) + pad(String(comparison.onlyBaseline), 8, right: true)
                    + "   p = " + pValue(comparison.pValue))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func pValue(_ p: Double) -> String {
        if p >= 0.001 { return String((p * 1000).rounded() / 1000) }
        return "< 0.001"
    }

    /// The same table in Markdown.
    public static func markdown(_ summaries: [StrategySummary], _ comparisons: [PairedComparison], target: String, title: String,
                                constant: ConstantBaseline? = nil) -> String
    {
        let constantColumn = constant.map { " always \($0.answer) |" } ?? ""
        var text = "# \(title)\n\n| strategy | n | accuracy | 95% CI |\(constantColumn) tok/s | mean tokens | mean steps |\n"
            + "|---|---:|---:|---|\(constant == nil ? "" : "---:|")---:|---:|---:|\n"
        for row in summaries {
            let constantCell = constant == nil ? "" : " \(percent(row.constantAccuracy ?? 0)) |"
            text += "| \(row.strategy) | \(row.n) | \(percent(row.accuracy)) | [\(percent(row.interval.low)), \(percent(row.interval.high))] |\(constantCell) \(format1(row.tokensPerSecond)) | \(format1(row.meanTokens)) | \(format1(row.meanSteps)) |\n"
        }
        if let constant {
            text += "\n*always \(constant.answer)*: what always giving the most common answer scores on the same items.\n"
        }
        if !comparisons.isEmpty {
            text += "\n| \(target) vs | items | only \(target) right | only baseline right | exact McNemar p |\n|---|---:|---:|---:|---:|\n"
            for comparison in comparisons {
                text += "| \(comparison.baseline) | \(comparison.items) | \(comparison.onlyTarget) | \(comparison.onlyBaseline) | \(pValue(comparison.pValue)) |\n"
            }
        }
        return text + "\n![accuracy](accuracy.svg)\n"
    }

    /// A self-contained SVG bar chart of accuracy per column with 95% intervals; the target column in
    /// blue, and on yes/no and multiple-choice sets a dashed line at the constant answer's accuracy.
    public static func svg(_ summaries: [StrategySummary], title: String, target: String = Strategy.selfAnchor.rawValue,
                           constant: ConstantBaseline? = nil) -> String
    {
        let width = max(520, 120 + summaries.count * 110)
        let height = 360
        let plotTop = 50.0
        let plotBottom = 300.0
        func y(_ value: Double) -> Double { plotBottom - value * (plotBottom - plotTop) }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="13">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(width / 2)" y="28" text-anchor="middle" font-size="16" font-weight="bold">\(escape(title))</text>

            """
        for tick in stride(from: 0.0, through: 1.0, by: 0.2) {
            svg += "<line x1=\"70\" x2=\"\(width - 20)\" y1=\"\(y(tick))\" y2=\"\(y(tick))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"62\" y=\"\(y(tick) + 4)\" text-anchor=\"end\" fill=\"#555\">\(Int(tick * 100))%</text>\n"
        }
        for (index, row) in summaries.enumerated() {
            let x = 90.0 + Double(index) * 110
            let colour = row.strategy == target ? "#1f77b4" : "#9aa5b1"
            svg += "<rect x=\"\(x)\" y=\"\(y(row.accuracy))\" width=\"70\" height=\"\(plotBottom - y(row.accuracy))\" fill=\"\(colour)\"/>"
            let centre = x + 35
            svg += "<line x1=\"\(centre)\" x2=\"\(centre)\" y1=\"\(y(row.interval.low))\" y2=\"\(y(row.interval.high))\" stroke=\"black\" stroke-width=\"1.5\"/>"
            for bound in [row.interval.low, row.interval.high] {
                svg += "<line x1=\"\(centre - 8)\" x2=\"\(centre + 8)\" y1=\"\(y(bound))\" y2=\"\(y(bound))\" stroke=\"black\" stroke-width=\"1.5\"/>"
            }
            svg += "<text x=\"\(centre)\" y=\"\(y(row.interval.high) - 6)\" text-anchor=\"middle\">\(percent(row.accuracy))</text>"
            svg += "<text x=\"\(centre)\" y=\"\(plotBottom + 20)\" text-anchor=\"middle\">\(escape(row.strategy))</text>"
            svg += "<text x=\"\(centre)\" y=\"\(plotBottom + 38)\" text-anchor=\"middle\" fill=\"#555\" font-size=\"11\">n = \(row.n)</text>\n"
        }
        if let constant, let widest = summaries.max(by: { $0.n < $1.n }), let floor = widest.constantAccuracy {
            svg += "<line x1=\"70\" x2=\"\(width - 20)\" y1=\"\(y(floor))\" y2=\"\(y(floor))\" stroke=\"#d62728\" stroke-dasharray=\"6 4\"/>"
            svg += "<text x=\"\(width - 22)\" y=\"\(y(floor) - 4)\" text-anchor=\"end\" fill=\"#d62728\" font-size=\"11\">always \(escape(constant.answer)): \(percent(floor))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Writes `<directory>/summary.md` and `<directory>/accuracy.svg` for these records and returns the
    /// table for the terminal: what `eval` and `eval merge` print and write.
    public static func write(_ records: [EvalRecord], columns: [String], target: String, items: [EvalItem], title: String,
                             to directory: String) throws -> String
    {
        let constant = ConstantBaseline(items: items)
        let summaries = summarize(records, strategies: columns, constant: constant)
        let comparisons = compare(records, target: target, baselines: columns)
        try writeText(markdown(summaries, comparisons, target: target, title: title, constant: constant), to: directory + "/summary.md")
        try writeText(svg(summaries, title: title, target: target, constant: constant), to: directory + "/accuracy.svg")
        return table(summaries, comparisons, target: target, constant: constant)
    }

    /// The column the others are compared with: `self-anchor` when it is one, else the first.
    public static func defaultTarget(_ columns: [String]) -> String {
        columns.contains(Strategy.selfAnchor.rawValue) ? Strategy.selfAnchor.rawValue : columns[0]
    }

    static func escape(_ text: String) -> String {
        text.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }
}
