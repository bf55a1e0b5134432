import Testing
@testable import SelfAnchor

@Suite struct CalculatorTests {
    func value(_ text: String) -> String? { Calculator.result(endingWith: text)?.value }

    @Test func evaluatesTheExpressionBeforeTheEqualsSign() {
        #expect(value("so she has 16 - 3 =") == "13")
        #expect(value("Total: 20 + 80 + 160 =") == "260")
        #expect(value("3 × 4 × 5 =") == "60")
        #expect(value("20 − 3 − 4 =") == "13")
        #expect(value("-3 × 2 =") == "-6", "a sign is not a subtraction")
        #expect(value("80,000 + 120,000 =") == "200,000", "separators when the model wrote them")
        #expect(value("1000 * 1000 =") == "1000000")
        #expect(value("8 x 3 =") == "24")
        #expect(value("10 / 4 =") == "2.5")
        #expect(value("10 ÷ 3 =") == "3.3333", "rounded when it does not terminate")
        #expect(value("1 / 8 =") == "0.125", "exact when it terminates")
        #expect(value("150% × 80,000 =") == "120,000")
        #expect(value("5 × 0.60 =") == "3")
        #expect(value("3 - 5 =") == "-2")
        #expect(value("-3 + 1 =") == "-2")
    }

    @Test func moneyInMoneyOut() {
        #expect(value("so she makes 9 * $2 =") == "$18")
        #expect(value("$10 / $2 =") == "5", "a ratio of two amounts")
        #expect(value("$40 + $24 =") == "$64")
        #expect(value("Profit = $200,000 - $80,000 =") == "$120,000")
    }

    @Test func readsLaTeX() {
        #expect(value("\\[ 8 \\times 5 =") == "40")
        #expect(value("\\( 2 \\cdot 80 =") == "160")
        #expect(value("\\frac{3}{4} =") == "0.75")
        #expect(value("\\$5 \\times 8 =") == "\\$40", "the dollar sign as LaTeX writes it")
        #expect(value("60 \\div 4 =") == "15")
    }

    @Test func readsPastUnits() {
        #expect(value("She sells 9 eggs * $2 =") == "$18")
        #expect(value("\\[ 16 \\text{ eggs} - 7 \\text{ eggs} =") == "9")
        #expect(value("\\[ 9 \\text{ eggs} \\times \\$2/\\text{egg} =") == "\\$18")
        #expect(value("20 chickens * 3 cups per chicken =") == "60")
        #expect(value("15 cups + 25 cups =") == "40")
    }

    @Test func takesOnlyTheArithmeticTail() {
        #expect(Calculator.result(endingWith: "He buys 3 boxes, so 3 × 4 =")?.expression == "3 × 4")
        #expect(value("Step 2: 12 − 5 =") == "7")
        #expect(value("a = 3 + 4 =") == "7", "the last link of a chain")
        #expect(value("Earlier: 1 + 1 = 2\nNow 2 + 5 =") == "7", "the current line only")
    }

    @Test func leavesEverythingElseToTheModel() {
        #expect(value("x =") == nil)
        #expect(value("Total =") == nil)
        #expect(value("16 =") == nil, "no operator")
        #expect(value("Janet has 16 eggs and eats 3 =") == nil, "words between numbers")
        #expect(value("3 +") == nil, "no equals sign")
        #expect(value("3 + 4 = 7") == nil, "something after the equals sign")
        #expect(value("if a <=") == nil)
        #expect(value("3 + 4 ==") == nil)
        #expect(value("5 / 0 =") == nil, "division by zero")
        #expect(value("99999999999 * 99999999999 * 99999999999 =") == nil, "overflow")
        #expect(value("the 3rd + 4 =") == nil, "an ordinal is not a number, and + 4 alone has no left operand")
        #expect(value("(3 + 4 =") == "7", "an unmatched parenthesis is left out")
    }

    @Test func evaluatesASumTimesOrDividedByANumber() {
        // gsm8k-110: "(48 + 42) / 2 = 90"; gsm8k-31: "(80 + 60 + 100) ÷ 3 = 140".
        #expect(value("(48 + 42) / 2 =") == "45")
        #expect(value("The average is (80 + 60 + 100) ÷ 3 =") == "80")
        #expect(value("2 × (15 - 5) =") == "20")
        #expect(value("(2 + 3) * (4 - 1) =") == "15")
        #expect(value("($25 + $75) / 2 =") == "$50", "money divided by a count is money")
        #expect(value("($100 + $50) / ($20 + $10) =") == "5", "money divided by money is a ratio")
        #expect(value("\\left(3 + 1\\right) \\div 2 =") == "2")
        #expect(value("\\frac{16 + 8 + 4 + 2}{4} =") == "7.5")
        #expect(value("(90 minutes + 30 seconds) / 2 =") == nil, "a sum of different units")
        #expect(value("(20 eggs + 10 eggs) × $2/egg =") == "$60", "units compared inside the sum only")
    }

    @Test func leavesAnExpressionWithAnUnknownInItToTheModel() {
        // gsm8k-125, cot with the calculator: "\( x + 5 - 3 = 2 \)" and then x = 0.
        #expect(value("\\( x + 5 - 3 =") == nil)
        #expect(value("so 2y × 3 + 4 =") == nil)
        #expect(value("3x + 5 - 2 =") == nil)
        #expect(value("Let x be the price: x + 5 =") == nil)
    }

    @Test func leavesSumsOfDifferentUnitsToTheModel() {
        // gsm8k-174, cot with the calculator: "90 minutes + 300 seconds = 390 seconds".
        #expect(value("90 minutes + 300 seconds =") == nil)
        #expect(value("2 hours - 30 minutes =") == nil)
        #expect(value("90 minutes + 5 minutes =") == "95", "one unit")
        #expect(value("16 eggs - 1 egg =") == "15", "singular and plural are one unit")
        #expect(value("16 eggs - 3 =") == "13", "a number without a unit")
        #expect(value("5 seconds * 60 potatoes =") == "300", "a product of units is no conversion")
    }

    @Test func readsPastListMarkers() {
        #expect(value("- 16 - 3 =") == "13", "a dash that starts a list item is no sign")
        #expect(value("  * 4 × 5 =") == "20")
        #expect(value("• 20 + 5 =") == "25")
        #expect(value("-16 - 3 =") == "-19", "a dash glued to the number is a sign")
    }

    @Test func leavesExpressionsTheModelWritesOutALevelAtATime() {
        // "12 + (5 × 3) = 12 + 15 = 27": a value after the first "=" would cut the model's expansion short.
        #expect(value("$12 + (5 * $3) + (4 * $1.50) =") == nil)
        #expect(value("2 + 3 * 4 =") == nil, "both kinds of operators")
        #expect(value("(2 * 3) + 4 =") == nil, "parentheses around a product")
        #expect(value("(2 + 3) * (4 * 5) =") == nil)
        #expect(value("(2 + 3) * 4 + 1 =") == nil, "more than one operator outside the parentheses")
        #expect(value("$12 + (5 * $3) + (4 * $1.50) = $12 + $15 + $6 =") == "$33", "the expanded sum is evaluated")
    }
}
