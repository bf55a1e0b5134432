import Testing
@testable import JSON
import CJanssonShim

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct JSONRoundTripTests {
    @Test func nestedValuesRoundTrip() throws {
        let value: JSONValue = [
            "name": "selfanchor", "nested": ["a": [1, 2, ["deep": [true, false, nil]]], "b": [:]],
            "empty": [], "pi": 3.14159, "count": 42,
        ]
        let text = value.serialized()
        #expect(!text.contains("\n"))
        #expect(!text.contains(": "))
        #expect(try JSONValue.parse(text) == value)
    }

    @Test func objectKeysKeepDocumentOrder() throws {
        let parsed = try JSONValue.parse(#"{"z":1,"a":2,"m":3}"#)
        #expect(parsed.objectValue.map { Array($0.keys) } == ["z", "a", "m"])
        #expect(parsed.serialized() == #"{"z":1,"a":2,"m":3}"#)
    }

    @Test func scalarsAtTopLevel() throws {
        #expect(try JSONValue.parse("null") == .null)
        #expect(try JSONValue.parse("true") == .bool(true))
        #expect(try JSONValue.parse(" \"x\" ") == .string("x"))
        #expect(JSONValue.string("x").serialized() == "\"x\"")
        #expect(JSONValue.null.serialized() == "null")
    }

    @Test func unicodeAstralAndEscapedSurrogatePairs() throws {
        let emoji = "🧮 naïve 日本語 𝔸"
        #expect(try JSONValue.parse(JSONValue.string(emoji).serialized()) == .string(emoji))
        // An escaped surrogate pair decodes to one astral character.
        #expect(try JSONValue.parse(#""\ud83e\uddee""#) == .string("🧮"))
        // Output is UTF-8, not \u escapes.
        #expect(JSONValue.string("é").serialized() == "\"é\"")
        // Control characters and NUL are escaped and survive.
        let control = "a\u{0}b\n\t\"\\"
        let written = JSONValue.string(control).serialized()
        #expect(!written.utf8.contains(0))
        #expect(try JSONValue.parse(written) == .string(control))
    }

    @Test func loneSurrogateIsRejected() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#""\ud800""#) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#""\udc00x""#) }
    }

    @Test func invalidUTF8IsRejected() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
    }

    @Test func largeAndNegativeIntegersAndFloats() throws {
        for number in [Int64.max, Int64.min, -1, 0, 9_007_199_254_740_993] {
            let text = JSONValue.integer(number).serialized()
            #expect(text == String(number))
            #expect(try JSONValue.parse(text) == .integer(number))
        }
        for real in [0.1, 0.7, -2.5e-300, 1.7976931348623157e308, 1.0 / 3.0, 1e21, 5e-324] {
            #expect(try JSONValue.parse(JSONValue.double(real).serialized()) == .double(real))
        }
        #expect(JSONValue.double(0.7).serialized() == "0.7")
        #expect(JSONValue.double(.nan).serialized() == "null")
        #expect(try JSONValue.parse("-0.5e2") == .double(-50))
        // Past 64 bits jansson refuses rather than rounding silently.
        #expect(throws: JSONParseError.self) { try JSONValue.parse("18446744073709551616") }
    }

    @Test func duplicateKeysAreRejectedUnlessAllowed() throws {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(#"{"a":1,"a":2}"#) }
        #expect(try JSONValue.parse(#"{"a":1,"a":2}"#, allowDuplicateKeys: true)["a"] == .integer(2))
    }
}

@Suite struct JSONErrorTests {
    @Test func truncatedInputReportsPosition() {
        do {
            _ = try JSONValue.parse("{\"a\": [1, 2")
            Issue.record("truncated input parsed")
        } catch {
            #expect(error.line == 1)
            #expect(error.position == 11)
            #expect(error.message.contains("end of"))
        }
    }

    @Test func invalidTokenReportsLineAndColumn() {
        do {
            _ = try JSONValue.parse("{\n  \"a\": tru\n}")
            Issue.record("invalid input parsed")
        } catch {
            #expect(error.line == 2)
            #expect(error.column > 5)
            #expect(error.message.contains("invalid token"))
        }
    }

    @Test func trailingGarbageAndEmptyInput() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{} x") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("") }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }
}

@Suite struct JSONMemoryTests {
    @Test func hundredThousandCyclesLeaveNoJanssonAllocationBehind() throws {
        cjansson_enable_allocation_counting()
        let document = #"{"jsonrpc":"2.0","id":7,"method":"solve","params":{"question":"Ducks lay 16 eggs 🦆","omega":1.5,"anchors":["a","b",null,true]}}"#
        let before = cjansson_live_allocations()
        var written = 0
        for _ in 0..<100_000 {
            let value = try JSONValue.parse(document)
            written += value.serialized().utf8.count
            _ = try? JSONValue.parse("[1, 2,")
        }
        #expect(written > 100_000)
        // Every json_t (and every string jansson dumped) was freed on this thread.
        #expect(cjansson_live_allocations() == before)
        // The counter does see live values: holding one keeps its blocks counted.
        let held = try JSONValue.parse(document).makeJansson()
        #expect(cjansson_live_allocations() > before)
        withExtendedLifetime(held) {}
    }
}
