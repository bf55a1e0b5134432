import JSON

// How decoder events and results look as JSON: the `--json` NDJSON stream of `selfanchor solve` and
// the payloads of the daemon's notifications and results use exactly these shapes.

extension DecoderEvent {
    /// The event's name on the wire: start, plan_delta, reason_delta, answer_delta, text_delta, plan,
    /// reason, answer, end.
    public var name: String {
        switch self {
        case .start: return "start"
        case .delta(let section, _, _): return section.rawValue + "_delta"
        case .plan: return "plan"
        case .reason: return "reason"
        case .answer: return "answer"
        case .calculation: return "calculation"
        case .end: return "end"
        }
    }

    public var jsonValue: JSONValue {
        var object: JSONObject = ["event": .string(name)]
        switch self {
        case .start(let info):
            object["strategy"] = .string(info.strategy)
            object["model"] = .string(info.model)
            object["prompt_tokens"] = .int(info.promptTokens)
            object["masked_prompt_tokens"] = .int(info.maskedPromptTokens)
        case .delta(_, let index, let text):
            object["index"] = .int(index)
            object["text"] = .string(text)
        case .plan(let record), .reason(let record):
            object.merge(record.jsonValue.objectValue ?? [:]) { _, new in new }
        case .answer(let answer):
            object.merge(answer.jsonValue.objectValue ?? [:]) { _, new in new }
        case .calculation(let calculation):
            object["expression"] = .string(calculation.expression)
            object["value"] = .string(calculation.value)
        case .end(let timings):
            object["timings"] = timings.jsonValue
        }
        return .object(object)
    }
}

extension StepRecord {
    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "index": .int(index), "text": .string(text), "omega": .double(omega),
            "confidence": confidence.map(JSONValue.double) ?? .null,
            "steering_confidence": steeringConfidence.map(JSONValue.double) ?? .null, "tokens": .int(tokens),
        ]
        if !anchors.isEmpty { object["anchors"] = .array(anchors.map { .string($0) }) }
        return .object(object)
    }
}

extension AnswerRecord {
    public var jsonValue: JSONValue {
        ["text": .string(text), "extracted": extracted.map(JSONValue.string) ?? .null, "task": .string(task.rawValue)]
    }
}

extension Timings {
    public var jsonValue: JSONValue {
        [
            "prompt_n": .int(promptN), "prompt_decoded_n": .int(promptDecodedN), "prompt_ms": .double(promptMs),
            "prompt_per_second": .double(promptPerSecond), "predicted_n": .int(predictedN),
            "predicted_ms": .double(predictedMs), "predicted_per_second": .double(predictedPerSecond),
            "inserted_n": .int(insertedN), "masked_n": .int(maskedN), "masked_skipped_n": .int(maskedSkippedN),
            "calculations_n": .int(calculationsN),
            "stop_reason": .string(stopReason.rawValue),
        ]
    }
}

extension SolveResult {
    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "strategy": .string(strategy), "question": .string(question), "text": .string(text),
            "steps": .array(steps.map { step in
                ["plan": step.plan?.jsonValue ?? .null, "reason": step.reason?.jsonValue ?? .null]
            }),
            "answer": answer?.jsonValue ?? .null, "timings": timings.jsonValue,
        ]
        if let planning { object["planning"] = .string(planning.rawValue) }
        return .object(object)
    }
}
