/// Writes an analysis as one self-contained HTML page: the tokens coloured by FAI and by WAAD with
/// anchors and preplan tokens marked, and the WAAD and FAI curves as inline SVG. No scripts, fonts or
/// other files are referenced, so the page can be mailed or attached as it is.
public enum AttentionReport {
    public static func html(_ report: AttentionReportData, title: String = "selfanchor analyze") -> String {
        let metrics = report.metrics
        let maxFAI = max(1e-12, metrics.fai.enumerated().filter { metrics.faiDefined[$0.offset] }.map(\.element).max() ?? 0)
        let window = Double(metrics.options.waadWindow)
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
            h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin-top:1.6em}
            .meta{color:#555;font-size:.9em} .meta code{background:#f3f3f3;padding:0 .25em;border-radius:3px}
            .tokens{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;white-space:normal;
              border:1px solid #ddd;border-radius:6px;padding:.8em;background:#fff}
            .t{white-space:pre;border-radius:2px;padding:1px 0}
            .a{text-decoration:underline 2px #b00020;text-underline-offset:4px;text-decoration-skip-ink:none}
            .p{box-shadow:inset 2px 0 0 #1a7f37}
            .legend{font-size:.85em;color:#444;margin:.4em 0} .legend span{margin-right:1.2em}
            .sw{display:inline-block;width:1.1em;height:.9em;vertical-align:middle;margin-right:.3em;border:1px solid #ccc}
            svg{background:#fff;border:1px solid #ddd;border-radius:6px}
            table{border-collapse:collapse;font-size:.85em} td,th{padding:.15em .6em;text-align:right;border-bottom:1px solid #eee}
            </style></head><body>
            <h1>\(escape(title))</h1>
            <p class="meta">Model <code>\(escape(report.model))</code> · layers \(report.layers.map(String.init).joined(separator: ", ")) \
            (\(report.headsPerLayer) query heads, \(report.kvHeadsPerLayer) KV heads each) · \(report.promptTokens) prompt tokens, \
            \(report.tokens.count) response tokens · W = \(metrics.options.waadWindow), FAI window \
            [\(metrics.options.faiWindowStart), \(metrics.options.faiWindowEnd)] · \
            \(metrics.isAnchor.filter { $0 }.count) anchors, \(metrics.isPreplan.filter { $0 }.count) preplan tokens · \
            τ<sub>waad</sub> = \(format(metrics.tauWaad)), τ<sub>Δ</sub> = \(format(metrics.tauDelta))</p>
            <p class="meta">Local heads (layer.head): \(heads(metrics.localHeads, report)) · Global heads: \(heads(metrics.globalHeads, report))</p>

            """
        page += "<h2>Tokens coloured by FAI (future attention influence)</h2>\n"
        page += legend(color: { fai(0.8) }, label: "high FAI")
        page += tokenPanel(report) { token in
            guard let value = token.fai else { return "background:repeating-linear-gradient(45deg,#fff,#fff 3px,#eee 3px,#eee 6px)" }
            return "background:\(fai(value / maxFAI))"
        }
        page += "<h2>Tokens coloured by WAAD (windowed average attention distance)</h2>\n"
        page += legend(color: { waad(0.8) }, label: "high WAAD (looks far back)")
        page += tokenPanel(report) { "background:\(waad($0.waad / window))" }
        page += "<h2>WAAD per token</h2>\n"
        page += curve(values: metrics.waad, marks: metrics.isPreplan, color: "#1f5fbf", markColor: "#1a7f37",
                      label: "WAAD", markLabel: "preplan token", fixedMax: window)
        page += "<h2>FAI per token</h2>\n"
        page += curve(values: metrics.fai.enumerated().map { metrics.faiDefined[$0.offset] ? $0.element : .nan },
                      marks: metrics.isAnchor, color: "#c2410c", markColor: "#b00020", label: "FAI", markLabel: "anchor token",
                      fixedMax: nil)
        page += topTable(report)
        page += "</body></html>\n"
        return page
    }

    // MARK: Pieces

    private static func tokenPanel(_ report: AttentionReportData, style: (TokenAttention) -> String) -> String {
        var html = "<div class=\"tokens\">"
        for token in report.tokens {
            var classes = "t"
            if token.isAnchor { classes += " a" }
            if token.isPreplan { classes += " p" }
            let tip = "#\(token.index) WAAD \(format(token.waad)) FAI \(token.fai.map(format) ?? "–") Δ \(format(token.delta))"
                + " γ \(format(token.gammaLocalChunk))/\(format(token.gammaGlobalAnchor))/\(format(token.gammaCoupled))"
                + (token.isAnchor ? " anchor" : "") + (token.isPreplan ? " preplan" : "")
            let text = escape(token.text).replacingNewlines()
            html += "<span class=\"\(classes)\" style=\"\(style(token))\" title=\"\(escape(tip))\">\(text.isEmpty ? "·" : text)</span>"
        }
        html += "</div>\n"
        return html
    }

    private static func legend(color: () -> String, label: String) -> String {
        """
        <div class="legend"><span><i class="sw" style="background:\(color())"></i>\(label)</span>\
        <span><i class="sw" style="border:0;border-bottom:2px solid #b00020"></i>anchor token (top FAI), underlined</span>\
        <span><i class="sw" style="box-shadow:inset 2px 0 0 #1a7f37"></i>preplan token (top Δ WAAD), green left edge</span>\
        <span>hover a token for its numbers (WAAD, FAI, Δ, γ local/global/coupled)</span></div>

        """
    }

    /// A line chart of `values` over token index (NaN: no value), with dots where `marks` is true.
    private static func curve(values: [Double], marks: [Bool], color: String, markColor: String, label: String,
                              markLabel: String, fixedMax: Double?) -> String
    {
        let width = 1080.0, height = 220.0, left = 48.0, right = 12.0, top = 12.0, bottom = 28.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let finite = values.filter(\.isFinite)
        let maximum = max(1e-12, fixedMax ?? (finite.max() ?? 1))
        let n = max(1, values.count - 1)
        func x(_ index: Int) -> Double { left + plotWidth * Double(index) / Double(n) }
        func y(_ value: Double) -> Double { top + plotHeight * (1 - min(1, max(0, value / maximum))) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(label) per token\">"
        // Axes and grid.
        for step in 0...4 {
            let value = maximum * Double(step) / 4
            let yy = y(value)
            svg += "<line x1=\"\(left)\" y1=\"\(yy)\" x2=\"\(width - right)\" y2=\"\(yy)\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(yy + 4)\" font-size=\"10\" text-anchor=\"end\" fill=\"#666\">\(format(value))</text>"
        }
        let ticks = min(10, values.count)
        for step in 0..<max(1, ticks) {
            let index = values.count <= 1 ? 0 : Int((Double(step) / Double(max(1, ticks - 1)) * Double(values.count - 1)).rounded())
            svg += "<text x=\"\(x(index))\" y=\"\(height - 8)\" font-size=\"10\" text-anchor=\"middle\" fill=\"#666\">\(index)</text>"
        }
        // The curve, broken where there is no value.
        var path = ""
        var penDown = false
        for (index, value) in values.enumerated() {
            guard value.isFinite else { penDown = false; continue }
            path += (penDown ? "L" : "M") + "\(format(x(index), digits: 1)),\(format(y(value), digits: 1))"
            penDown = true
        }
        svg += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.4\"/>"
        for (index, value) in values.enumerated() where index < marks.count && marks[index] && value.isFinite {
            svg += "<circle cx=\"\(format(x(index), digits: 1))\" cy=\"\(format(y(value), digits: 1))\" r=\"2.2\" fill=\"\(markColor)\"/>"
        }
        svg += "<text x=\"\(width - right)\" y=\"\(top + 10)\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">"
            + "\(label) (line) · \(markLabel) (dots) · x: response token index</text>"
        svg += "</svg>\n"
        return svg
    }

    private static func topTable(_ report: AttentionReportData) -> String {
        let anchors = report.tokens.filter { $0.fai != nil }.sorted { ($0.fai!, -$0.index) > ($1.fai!, -$1.index) }.prefix(15)
        var html = "<h2>Highest-FAI tokens</h2>\n<table><tr><th>#</th><th style=\"text-align:left\">token</th>"
            + "<th>FAI</th><th>WAAD</th><th>γ coupled</th></tr>"
        for token in anchors {
            html += "<tr><td>\(token.index)</td><td style=\"text-align:left\"><code>\(escape(token.text).replacingNewlines())</code></td>"
                + "<td>\(format(token.fai!))</td><td>\(format(token.waad))</td><td>\(format(token.gammaCoupled))</td></tr>"
        }
        return html + "</table>\n"
    }

    private static func heads(_ slots: [Int], _ report: AttentionReportData) -> String {
        slots.map { "\(report.headName($0)) (d = \(format(report.metrics.headDistances[$0], digits: 1)))" }
            .joined(separator: ", ")
    }

    // MARK: Colours and text

    /// White to orange.
    static func fai(_ level: Double) -> String { blend(level, to: (234, 88, 12)) }
    /// White to blue.
    static func waad(_ level: Double) -> String { blend(level, to: (37, 99, 235)) }

    private static func blend(_ level: Double, to color: (Int, Int, Int)) -> String {
        let l = level.isFinite ? min(1, max(0, level)) * 0.85 : 0
        func channel(_ c: Int) -> Int { Int((255 - Double(255 - c) * l).rounded()) }
        return "rgb(\(channel(color.0)),\(channel(color.1)),\(channel(color.2)))"
    }

    /// A number with at most three decimals, as the report and the CLI summary print it.
    public static func format(_ value: Double) -> String { format(value, digits: 3) }

    static func format(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "–" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        var text = "\(rounded)"
        if text.hasSuffix(".0") { text.removeLast(2) }
        if text.contains("e") { text = abs(value) < 1 ? "0" : "\(Int(value.rounded()))" }
        return text
    }

    /// Escapes text for HTML content and attribute values.
    static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.unicodeScalars.append(character)
            }
        }
        return output
    }
}

extension String {
    /// Newlines shown as ↵ followed by a line break, so that line structure survives in the token panel.
    fileprivate func replacingNewlines() -> String {
        var output = ""
        for character in self {
            if character.isNewline { output += "↵<br>" } else { output.append(character) }
        }
        return output
    }
}
