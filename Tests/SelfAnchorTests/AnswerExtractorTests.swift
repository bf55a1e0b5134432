import Testing
@testable import SelfAnchor

@Suite struct NumberExtractionTests {
    @Test(arguments: [
        ("Step 3: 9 * 2 = 18\nAnswer: 18", "18"),
        ("Answer: $1,234.50", "1234.5"),
        ("Answer: 16 - 3 - 4 = 9 eggs, 9 * 2 = 18", "18"),
        ("The total is 42 dollars.", "42"),
        ("Answer: 3/4", "0.75"),
        ("Answer: -7", "-7"),
        ("answer: 1,000,000 people", "1000000"),
        ("**Answer:** 5.0", "5"),
        ("Answer: .5", "0.5"),
        ("I computed 12 then 15.\nAnswer: 15.", "15"),
        ("The answer is 70000.", "70000"),
        ("Answer: 12.\nSome trailing words 99", "99"),
        // No answer line: the boxed value, even with numbers after it; a boxed fraction is its value.
        ("So Shiela will pay \\(\\boxed{255}\\) dollars each month for 3 months.", "255"),
        ("The share is \\(\\boxed{\\frac{3}{4}}\\) of 8 pies.", "0.75"),
        ("\\boxed{10} spoons, and then 2 more.\nAnswer: 12", "12"),
    ])
    func extracts(text: String, expected: String) {
        #expect(AnswerExtractor.extract(text, task: .number) == expected)
    }

    @Test func noNumberGivesNil() {
        #expect(AnswerExtractor.extract("Answer: I do not know", task: .number) == nil)
        #expect(AnswerExtractor.extract("", task: .number) == nil)
    }

    @Test func comparesNumerically() {
        #expect(AnswerExtractor.matches("18", reference: "18", task: .number))
        #expect(AnswerExtractor.matches("18.0", reference: "18", task: .number))
        #expect(AnswerExtractor.matches("0.75", reference: "3/4", task: .number))
        #expect(AnswerExtractor.matches("1234.5", reference: "1,234.50", task: .number))
        #expect(AnswerExtractor.matches("70000", reference: "He made a profit of #### 70000", task: .number))
        #expect(!AnswerExtractor.matches("17", reference: "18", task: .number))
        #expect(!AnswerExtractor.matches(nil, reference: "18", task: .number))
    }
}

@Suite struct ChoiceYesNoMathTextExtractionTests {
    @Test(arguments: [
        ("Answer: B", "B"), ("Answer: (C) refrigerator", "C"), ("Answer: D.", "D"),
        ("The answer is (A).", "A"), ("Reasoning...\nAnswer: E) none", "E"),
        ("I think option C is right.", "C"),
        // eval writes up to eight options, A–H.
        ("Answer: G", "G"), ("The answer is (H).", "H"), ("Reasoning...\nAnswer: F) none", "F"),
    ])
    func choice(text: String, expected: String) {
        #expect(AnswerExtractor.extract(text, task: .choice) == expected)
    }

    static let sunQuestion = "Which of these gives off its own light?\nOptions:\nA. the Moon\nB. a mirror\nC. the Sun\nD. water vapor\nE. water"

    @Test(arguments: [
        ("Answer: the Sun.", "C"), ("Answer: The sun", "C"), ("Reasoning.\nAnswer: water vapor\nMore text about the Moon", "D"),
        ("Answer: Water!", "E"), ("The Moon reflects light. Therefore, the Sun gives off its own light.", "C"),
        // A letter still wins over option text, as before.
        ("Answer: (B) the Sun", "B"),
    ])
    func choiceByOptionText(text: String, expected: String) {
        #expect(AnswerExtractor.extract(text, task: .choice, question: Self.sunQuestion) == expected)
    }

    @Test func optionInsideAnotherOptionsWordIsNotPartOfIt() {
        // "cat" is inside "concatenate" as letters, not as a word: naming both is ambiguous.
        let question = "Pick one.\nOptions:\nA. cat\nB. concatenate"
        #expect(AnswerExtractor.extract("Answer: cat, not concatenate", task: .choice, question: question) == nil)
        #expect(AnswerExtractor.extract("Answer: concatenate", task: .choice, question: question) == "B")
    }

    @Test func choiceNamingTwoOptionsOrNoneIsNil() {
        #expect(AnswerExtractor.extract("Answer: the Sun or the Moon", task: .choice, question: Self.sunQuestion) == nil)
        #expect(AnswerExtractor.extract("Answer: a star", task: .choice, question: Self.sunQuestion) == nil)
        // Without the question's options, option text cannot be read.
        #expect(AnswerExtractor.extract("Answer: the Sun.", task: .choice) == nil)
    }

    @Test func choiceWithoutLetterIsNil() {
        #expect(AnswerExtractor.extract("A cat sat on the mat.", task: .choice) == nil)
    }

    @Test(arguments: [
        ("Answer: yes", "yes"), ("Answer: No.", "no"), ("Answer: True", "yes"),
        ("Frost is likely, so yes.", "yes"), ("Answer: no, because yes is wrong", "no"),
        // Plain-language verdicts, with no yes or no in them.
        ("Lactic acid builds up in muscles. Therefore, it is not bad to have lactic acid in your body.", "no"),
        ("A pear is denser than water.\nSo a pear would sink in water.", "yes"),
        ("Answer: He couldn't have met her.", "no"),
        ("Answer: It is common in some places", "yes"),
        ("There is no record of that. In conclusion, frost is common during some commencements.", "yes"),
    ])
    func yesNo(text: String, expected: String) {
        #expect(AnswerExtractor.extract(text, task: .yesno) == expected)
    }

    @Test func yesNoMatchesReferenceCase() {
        #expect(AnswerExtractor.matches("yes", reference: "Yes", task: .yesno))
        #expect(!AnswerExtractor.matches("no", reference: "Yes", task: .yesno))
    }

    @Test(arguments: [
        ("so the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("Answer: \\boxed{x^{2} + 1}", "x^{2} + 1"),
        ("first \\boxed{1} then \\boxed{ 2 }", "2"),
        ("Answer: $\\pi/2$.", "\\pi/2"),
    ])
    func math(text: String, expected: String) {
        #expect(AnswerExtractor.extract(text, task: .math) == expected)
    }

    @Test func mathEquivalence() {
        #expect(MathNormalizer.equivalent("\\dfrac{1}{2}", "\\frac{1}{2}"))
        #expect(MathNormalizer.equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"))
        #expect(MathNormalizer.equivalent("90^\\circ", "90"))
        #expect(MathNormalizer.equivalent("\\text{(C)}", "(C)"))
        #expect(MathNormalizer.equivalent("0.5", "\\frac{1}{2}"))
        #expect(MathNormalizer.equivalent("10 cm", "10"))
        #expect(MathNormalizer.equivalent("x = 5", "5"))
        #expect(!MathNormalizer.equivalent("\\frac{1}{3}", "\\frac{1}{2}"))
    }

    @Test func text() {
        #expect(AnswerExtractor.extract("Plan...\nAnswer: Paris\nmore", task: .text) == "Paris")
        #expect(AnswerExtractor.extract("no marker", task: .text) == nil)
    }
}
