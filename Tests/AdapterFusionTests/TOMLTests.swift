import AdapterFusion
import Testing

/// The task-file TOML parser against the TOML 1.0 forms task files use, and its errors.
@Suite struct TOMLTests {
    func parse(_ text: String) throws -> TOMLTable { try TOMLParser.parse(text, file: "t.toml") }

    func error(_ text: String) -> String {
        do { _ = try parse(text); return "no error" } catch { return "\(error)" }
    }

    @Test func valuesOfEveryKind() throws {
        let t = try parse(
            """
            # comment
            name = "x\\ty\\u00e9\\"q\\""   # trailing comment
            lit = 'C:\\path'
            multi = \"\"\"
            one \\
              two\"\"\"
            raw = '''a
            b'''
            ints = [1_000, -2, +3, 0x1F, 0o17, 0b101,]
            floats = [0.5, -1e-3, 2E2, inf, -inf]
            yes = true
            no = false
            dotted.key = 1
            inline = { a = 1, b = "c" }

            [data]   # a table
            files = [
              "a.csv",  # first
              "b.csv",
            ]
            [data.sub]
            x = 1
            """)
        #expect(t["name"]?.string == "x\tyé\"q\"")
        #expect(t["lit"]?.string == "C:\\path")
        #expect(t["multi"]?.string == "one two")
        #expect(t["raw"]?.string == "a\nb")
        #expect(t["ints"]?.array?.compactMap(\.int) == [1000, -2, 3, 31, 15, 5])
        #expect(t["floats"]?.array?.compactMap(\.double) == [0.5, -1e-3, 200, .infinity, -.infinity])
        #expect(t["yes"]?.bool == true && t["no"]?.bool == false)
        #expect(t["dotted"]?.table?["key"]?.int == 1)
        #expect(t["inline"]?.table?["b"]?.string == "c")
        #expect(t["data"]?.table?["files"]?.array?.compactMap(\.string) == ["a.csv", "b.csv"])
        #expect(t["data"]?.table?["sub"]?.table?["x"]?.int == 1)
        #expect(t.keys == ["name", "lit", "multi", "raw", "ints", "floats", "yes", "no", "dotted", "inline", "data"])
    }

    @Test func errorsPointAtTheProblem() {
        let cases: [(String, String)] = [
            ("a = \"open\n", "t.toml:1:10: error: TOML: the string is never closed"),
            ("a = 1\na = 2\n", "t.toml:2:1: error: TOML: key 'a' is given twice"),
            ("[x]\n[x]\n", "t.toml:2:4: error: TOML: table [x] is defined twice"),
            ("a = yes\n", "t.toml:1:5: error: TOML: 'yes' is not a value"),
            ("a = 1 2\n", "t.toml:1:7: error: TOML: expected the end of the line"),
            ("a = 1979-05-27\n", "dates and times are not used"),
            ("a = 01\n", "leading zeros"),
            ("a = 1__0\n", "'_' must stand between two digits"),
            ("a = \"\\q\"\n", "unknown escape \\q"),
            ("a = [1, 2\n", "the array is never closed"),
            ("[[x]]\n", "arrays of tables"),
            ("a = 99999999999999999999\n", "does not fit a 64-bit integer"),
            ("a = \"\u{01}\"\n", "control character U+0001"),
            ("= 1\n", "expected a key"),
            (String(repeating: "a = [", count: 1) + String(repeating: "[", count: 100) + "\n", "nest more than 64 levels"),
            // A 50,000-part dotted key (a 100 KB file) grew memory with the square of its length
            // (15 GB and counting); it is refused at part 65, as a table header of as many parts is.
            (
                Array(repeating: "a", count: 50_000).joined(separator: ".") + " = 1\n",
                "t.toml:1:128: error: TOML: a key has more than 64 dotted parts"
            ),
            ("[" + Array(repeating: "a", count: 50_000).joined(separator: ".") + "]\n", "a key has more than 64 dotted parts"),
            (
                "[" + Array(repeating: "t", count: 40).joined(separator: ".") + "]\n" + Array(repeating: "k", count: 40).joined(separator: ".")
                    + " = 1\n",
                "t.toml:2:1: error: TOML: the key nests more than 64 tables deep"
            ),
        ]
        for (text, expected) in cases {
            let e = error(text)
            #expect(e.contains(expected), "\(text.debugDescription): \(e)")
        }
    }
}
