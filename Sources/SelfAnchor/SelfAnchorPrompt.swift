/// The system prompt of the Self-Anchor decoder: what the layout is, and one worked example in it.
///
/// The example shows the kind of answer the task wants (a number, yes or no, an option letter, a boxed
/// expression), because a small model copies the example's answer line more faithfully than it follows
/// an instruction. On number tasks the upfront plan uses every fact and ends with what the question asks,
/// and each step states the facts it uses before it calculates, as in a three-item example (measured on
/// gsm8k-dev items 101–200 against steps that only calculate after a two-item plan: README, `eval`);
/// the interleaved prompt is the one its measurements were made with. On multiple choice the plan first
/// recalls what the question is about, in its own words and before any option is judged, then checks
/// each option against that, then chooses (measured on arc-easy-dev against a plan that goes for the
/// option at once: README, "What was tried on arc-easy-dev").
enum SelfAnchorPrompt {
    /// A solved problem, in parts the two layouts arrange differently.
    struct WorkedExample {
        var problem: String
        var plans: [String]
        var steps: [String]
        var answer: String
    }

    static func system(task: TaskType, planning: Planning) -> String {
        let example = example(for: task, planning: planning)
        let reasons = task == .yesno || task == .choice
        switch planning {
        case .interleaved:
            var lines = [
                "Solve the problem in short lines. Alternate a plan line, which names the next sub-goal, and a step "
                    + "line, which carries it out: state the facts from the problem that it uses, then calculate.",
                "Example:", "Problem: \(example.problem)",
            ]
            for (index, (plan, step)) in zip(example.plans, example.steps).enumerated() {
                lines += ["Plan \(index + 1): \(plan)", "Step \(index + 1): \(step)"]
            }
            lines += ["Answer: \(example.answer)", task.answerInstruction]
            return lines.joined(separator: "\n")
        case .upfront:
            var lines = [
                "Solve the problem in two parts. First write a plan: a numbered list of sub-goals, one per line, "
                    + (reasons
                        ? "each saying what to work out. Then carry out the plan, one step per plan item, each doing its "
                            + "reasoning with the facts it uses. "
                        : "each saying what to work out, using every fact the problem gives; the last sub-goal finds what "
                            + "the question asks. Then carry out the plan, one step per plan item, each doing its calculation: "
                            + "first the facts from the problem it uses, then the calculation with their numbers. ")
                    + "Then write the answer line.",
                "Example:", "Problem: \(example.problem)", "Plan:",
            ]
            lines += example.plans.enumerated().map { "\($0.offset + 1). \($0.element)" }
            lines += example.steps.enumerated().map { "Step \($0.offset + 1): \($0.element)" }
            lines += ["Answer: \(example.answer)", task.answerInstruction]
            return lines.joined(separator: "\n")
        }
    }

    static func example(for task: TaskType, planning: Planning) -> WorkedExample {
        switch task {
        case .number, .math, .text:
            let answer = task == .math ? "\\boxed{7}" : "7"
            let problem = "Tom has 3 boxes with 4 pens each. He gives away 5 pens. How many pens does he have left?"
            let plans = ["Find how many pens Tom has before giving any away.", "Find how many pens are left after he gives 5 away."]
            switch planning {
            case .interleaved:
                return WorkedExample(problem: problem, plans: plans, steps: [
                    "Tom has 3 boxes and each box holds 4 pens, so he has 3 × 4 = 12 pens.",
                    "He gives away 5 of his 12 pens, so 12 − 5 = 7 pens are left.",
                ], answer: answer)
            case .upfront:
                return WorkedExample(
                    problem: "A farmer picks 4 crates of 12 apples. He sells 30 apples and gives half of the rest to a "
                        + "neighbour. How many apples does he keep?",
                    plans: ["Find how many apples the farmer picks.", "Find how many are left after he sells 30.",
                            "Find how many he keeps after giving half of the rest away."],
                    steps: ["He picks 4 crates of 12 apples, so he picks 4 × 12 = 48 apples.",
                            "He sells 30 of the 48 apples, so 48 − 30 = 18 are left.",
                            "He gives half of the 18 to a neighbour, so he keeps 18 ÷ 2 = 9 apples."],
                    answer: task == .math ? "\\boxed{9}" : "9")
            }
        case .yesno:
            return WorkedExample(
                problem: "Could a penguin walk from Antarctica to Australia?",
                plans: ["Find what lies between Antarctica and Australia.", "Decide whether a penguin could cross it on foot."],
                steps: [
                    "Antarctica and Australia are separated by the Southern Ocean, thousands of kilometres of open sea.",
                    "Nobody can walk across open sea, so a penguin could not walk there.",
                ],
                answer: "no")
        case .choice:
            return WorkedExample(
                problem: "Which of these gives off its own light?\nOptions:\nA. the Moon\nB. a mirror\nC. the Sun\nD. a window",
                plans: ["Recall what it means to give off light.", "Check each option against it.",
                        "Choose the option that fits."],
                steps: [
                    "Something gives off its own light when it makes light itself, rather than reflecting or passing on "
                        + "light that comes from elsewhere.",
                    "A. The Moon only reflects sunlight. B. A mirror only reflects light. C. The Sun makes its own light. "
                        + "D. A window only lets light through.",
                    "Only the Sun makes its own light, so the answer is option C.",
                ],
                answer: "C")
        }
    }
}
