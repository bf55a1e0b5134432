import JSON
import SelfAnchor
import TextFiles

/// One benchmark question with its reference answer, whatever file layout it came from.
public struct EvalItem: Sendable, Equatable {
    public var id: String
    /// The question as the model sees it (options appended for multiple choice).
    public var question: String
    /// The reference answer in the form `AnswerExtractor.matches` compares against.
    public var reference: String
    public var task: TaskType
}

/// Why a dataset file could not be read.
public struct DatasetError: Error, CustomStringConvertible {
    public let description: String
}

/// Reads the standard benchmark layouts from JSON Lines:
/// - flat (../shared/data): `id`, `question`, `answer`, optional `choices` {"A": text, …}
/// - GSM8K: `question`, `answer` ending in `#### n`
/// - MATH: `problem` with `answer`, or with `solution` containing `\boxed{}`
/// - StrategyQA: `question`, `answer` true/false (or "Yes"/"No")
/// - multiple choice: ARC/CommonsenseQA (`question` {stem, choices [{label, text}]}, `answerKey`),
///   Hugging Face (`question`, `choices` {label: […], text: […]}, `answerKey`), or OLMo (`query`, `choices` […], `gold`)
public enum DatasetLoader {
    public static func load(path: String, task: TaskType?) throws -> [EvalItem] {
        let text: String
        do { text = try readText(path) } catch { throw DatasetError(description: error.description) }
        var items: [EvalItem] = []
        var seen = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = String(line).trimmingCharacters(" \t\r")
            guard !trimmed.isEmpty else { continue }
            let value: JSONValue
            do {
                value = try JSONValue.parse(trimmed)
            } catch {
                throw DatasetError(description: "\(path):\(number + 1): not JSON: \(error)")
            }
            guard var item = try item(from: value, line: number + 1, path: path) else { continue }
            if let task { item.task = task }
            if item.task == .choice, !"ABCDEFGH".contains(item.reference), item.reference.count == 1 {
                throw DatasetError(description: "\(path):\(number + 1): reference \(item.reference) is not an option letter")
            }
            // Some layouts (OLMo) repeat a document once per choice.
            if seen.insert(item.id).inserted { items.append(item) }
        }
        guard !items.isEmpty else { throw DatasetError(description: "\(path): no items") }
        return items
    }

    static func item(from value: JSONValue, line: Int, path: String) throws -> EvalItem? {
        guard case .object(let object) = value else {
            throw DatasetError(description: "\(path):\(line): expected a JSON object")
        }
        let id = object["id"]?.stringValue ?? object["id"]?.integerValue.map(String.init)
            ?? object["qid"]?.stringValue ?? object["unique_id"]?.stringValue ?? "line-\(line)"
        // Multiple choice, in its layouts.
        if var choices = choiceList(object) {
            let stem = object["question"]?["stem"]?.stringValue ?? object["question"]?.stringValue
                ?? object["query"]?.stringValue.map(stripQuery)
            guard let stem else { throw DatasetError(description: "\(path):\(line): a choice item without a question") }
            var reference = object["answerKey"]?.stringValue ?? object["answer"]?.stringValue
            if reference == nil, let gold = object["gold"]?.integerValue, gold >= 0, Int(gold) < choices.count {
                reference = choices[Int(gold)].label
            }
            guard var reference else { throw DatasetError(description: "\(path):\(line): a choice item without an answer key") }
            reference = reference.trimmingCharacters(" ")
            let letters = optionLetters
            if !choices.allSatisfy({ letters.contains($0.label) }) {
                // ARC labels some items' options 1–4: ask with letters, as the prompts and extraction expect.
                let index = choices.firstIndex { $0.label == reference }
                choices = choices.enumerated().map { (letters[$0.offset % letters.count], $0.element.text) }
                if let index { reference = letters[index % letters.count] }
            }
            let options = choices.map { "\($0.label). \($0.text)" }.joined(separator: "\n")
            return EvalItem(id: id, question: "\(stem)\nOptions:\n\(options)", reference: reference, task: .choice)
        }
        // MATH.
        if let problem = object["problem"]?.stringValue {
            let reference = object["answer"]?.stringValue
                ?? object["solution"]?.stringValue.flatMap { AnswerExtractor.extract($0, task: .math) }
            guard let reference else { throw DatasetError(description: "\(path):\(line): a MATH item without an answer") }
            return EvalItem(id: id, question: problem, reference: reference, task: .math)
        }
        guard let question = object["question"]?.stringValue else {
            throw DatasetError(description: "\(path):\(line): no \"question\" (or \"problem\") field")
        }
        switch object["answer"] {
        case .bool(let flag)?:
            return EvalItem(id: id, question: question, reference: flag ? "yes" : "no", task: .yesno)
        case .string(let answer)?:
            if let marker = answer.ranges(of: "####").last {
                let number = String(answer[marker.upperBound...]).trimmingCharacters(" \n").replacing(",", with: "")
                return EvalItem(id: id, question: question, reference: number, task: .number)
            }
            let lower = answer.lowercased()
            if lower == "yes" || lower == "no" || lower == "true" || lower == "false" {
                return EvalItem(id: id, question: question, reference: lower == "yes" || lower == "true" ? "yes" : "no", task: .yesno)
            }
            if AnswerExtractor.numericValue(answer) != nil {
                return EvalItem(id: id, question: question, reference: answer, task: .number)
            }
            return EvalItem(id: id, question: question, reference: answer, task: answer.contains("\\") ? .math : .text)
        case .integer(let number)?:
            return EvalItem(id: id, question: question, reference: String(number), task: .number)
        case .double(let number)?:
            return EvalItem(id: id, question: question, reference: String(number), task: .number)
        default:
            throw DatasetError(description: "\(path):\(line): no usable \"answer\" field")
        }
    }

    /// The labels options are asked with, in order.
    static let optionLetters = ["A", "B", "C", "D", "E", "F", "G", "H"]

    /// The options of a multiple-choice item, labelled.
    static func choiceList(_ object: JSONObject) -> [(label: String, text: String)]? {
        let letters = optionLetters
        if let list = object["question"]?["choices"]?.arrayValue {  // ARC / CommonsenseQA original
            return list.enumerated().compactMap { index, choice in
                choice["text"]?.stringValue.map { (choice["label"]?.stringValue ?? letters[index % letters.count], $0) }
            }
        }
        switch object["choices"] {
        case .object(let choices)?:
            if let labels = choices["label"]?.arrayValue, let texts = choices["text"]?.arrayValue {  // Hugging Face
                return zip(labels, texts).compactMap { label, text in
                    guard let label = label.stringValue, let text = text.stringValue else { return nil }
                    return (label, text)
                }
            }
            return choices.compactMap { label, text in text.stringValue.map { (label, $0) } }  // flat
        case .array(let texts)?:  // OLMo
            return texts.enumerated().compactMap { index, text in text.stringValue.map { (letters[index % letters.count], $0) } }
        default:
            return nil
        }
    }

    static func stripQuery(_ query: String) -> String {
        var text = query
        if text.hasPrefix("Question: ") { text.removeFirst(10) }
        if text.hasSuffix("\nAnswer:") { text.removeLast(8) }
        return text
    }
}


