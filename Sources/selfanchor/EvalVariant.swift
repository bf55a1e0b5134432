import Evaluation
import JSON
import JSONRPC
import SelfAnchor
import SelfAnchorProtocol
import WireMapping

/// `--variant NAME=STRATEGY[:key=value,…]`: an extra column of an eval run, a strategy with options
/// under its own name. The keys are those of a solve's `options` on the daemon (`omega`, `omegaMode`,
/// `planOmega`, `maxTokens`, …); values are JSON scalars (numbers, true, false, null) or bare words.
struct EvalVariant: Equatable {
    var name: String
    var strategy: Strategy
    /// The options object, in the order given.
    var options: JSONObject
    /// The text as the user wrote it (kept in every record of the column).
    var definition: String

    struct Problem: Error, CustomStringConvertible { let description: String }

    init(parsing text: String) throws(Problem) {
        definition = text
        guard let equals = text.firstIndex(of: "=") else {
            throw Problem(description: "--variant '\(text)': expected NAME=STRATEGY[:key=value,…]")
        }
        name = String(text[..<equals]).trimmingSpaces
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_+.".contains($0) }) else {
            throw Problem(description: "--variant '\(text)': the name must be letters, digits, '-', '_', '+' or '.'")
        }
        let rest = text[text.index(after: equals)...]
        let strategyText = rest.prefix { $0 != ":" }
        guard let strategy = Strategy(rawValue: String(strategyText).trimmingSpaces) else {
            throw Problem(description: "--variant \(name): unknown strategy '\(strategyText)' (use \(Strategy.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        self.strategy = strategy
        options = [:]
        let list = rest.dropFirst(strategyText.count + 1)
        for pair in list.split(separator: ",", omittingEmptySubsequences: true) {
            guard let sign = pair.firstIndex(of: "=") else {
                throw Problem(description: "--variant \(name): '\(pair)' is not key=value")
            }
            let key = String(pair[..<sign]).trimmingSpaces
            let raw = String(pair[pair.index(after: sign)...]).trimmingSpaces
            guard !key.isEmpty else { throw Problem(description: "--variant \(name): '\(pair)' has no key") }
            guard options[key] == nil else { throw Problem(description: "--variant \(name): \(key) is given twice") }
            options[key] = Self.scalar(raw)
        }
    }

    /// A number, true, false or null as JSON; anything else as a string.
    static func scalar(_ raw: String) -> JSONValue {
        if let value = try? JSONValue.parse(raw) {
            switch value {
            case .integer, .double, .bool, .null: return value
            default: break
            }
        }
        return .string(raw)
    }

    /// The column: the strategy set up by the command line's options, then the variant's own.
    func column(configure: (inout SolveRequest) -> Void) throws(Problem) -> EvalColumn {
        var template = SolveRequest(question: "", strategy: strategy)
        configure(&template)
        do {
            let reader = try ParamsReader(.object(options), path: "--variant \(name)")
            template.apply(try SolveOptions(reader, limits: RequestLimits()))
        } catch {
            throw Problem(description: error.message)
        }
        return EvalColumn(name: name, template: template, definition: definition)
    }
}
