import AdapterFusion
import Foundation
import Testing

/// Bad input found by hostile use and by fuzzing: each gets an error that says what and where,
/// never a crash, a hang or a silently wrong result.
@Suite struct InputValidationTests {
    static let head = "fusion f\nbase b\nstore s\ntask t\n"

    func recipeError(_ text: String) -> String {
        do { _ = try Recipe.parse(text, file: "r.fuse"); return "no error" } catch { return "\(error)" }
    }

    @Test func crlfRecipesParseLikeLF() throws {
        let lf = Self.head + "compose fuse(a, b)\noptions static\n"
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try Recipe.parse(crlf, file: "r.fuse").expr == Recipe.parse(lf, file: "r.fuse").expr)
        // Positions still count lines: an error on line 5 says line 5.
        let bad = (Self.head + "compose fuse(a, b)\noptions stattic\n").replacingOccurrences(of: "\n", with: "\r\n")
        #expect(recipeError(bad).contains("r.fuse:6:9:"), "\(recipeError(bad))")
    }

    @Test func deepNestingIsAnErrorNotAStackOverflow() {
        let depth = 20_000
        let text = Self.head + "compose " + String(repeating: "fuse(", count: depth) + "a" + String(repeating: ")", count: depth) + "\n"
        #expect(recipeError(text).contains("nest more than 64 levels"))
    }

    @Test func weightsAreNumbersAndTheErrorPointsAtThem() {
        for (w, message) in [
            ("nan", "is not a finite number"), ("1e", "is not a finite number"), ("inf", "is not a finite number"),
            ("1e39", "is not a finite number"), ("1000", "too large"),
        ] {
            let e = recipeError(Self.head + "compose average(\(w) * a, b)\n")
            #expect(e.contains("r.fuse:5:17:") && e.contains(message), "\(w): \(e)")
        }
        // A leading '+' is a number too.
        #expect(recipeError(Self.head + "compose average(+0.5 * a, 0.5 * b)\n") == "no error")
    }

    @Test func invisibleCharactersAreNamed() {
        let e = recipeError(Self.head + "compose fuse(a,\u{00A0}b)\n")
        #expect(e.contains("U+00A0 NO-BREAK SPACE"), "\(e)")
        let z = recipeError(Self.head + "compose fuse(a, b\u{200B})\n")
        #expect(z.contains("U+200B ZERO WIDTH SPACE"), "\(z)")
    }

    @Test func hugeTokensAreCutShort() {
        let name = String(repeating: "x", count: 1_000_000)
        let e = recipeError(Self.head + "compose fuse(a, b)\noptions \(name)\n")
        #expect(e.count < 2_000, "message of \(e.count) characters")
    }

    func task(_ text: String) throws -> String {
        let dir = try Support.tempDir()
        let p = dir.appendingPathComponent("t.toml").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    @Test func taskFileTypesAndRanges() throws {
        let base = "name = \"x\"\n[data]\nfiles = [\"a\"]\nformat = \"label-text\"\n"
        let cases: [(String, String)] = [
            (base + "[labels]\nnames = [\"a\"]\n[split]\nrule = 5\n", "t.toml:8:1: error: '[split] rule' must be a string"),
            (base + "[labels]\nregression = \"yes\"\n", "'[labels] regression' must be true or false"),
            (base + "first_line = -3\n[labels]\nnames = [\"a\"]\n", "first_line counts from 1"),
            (base + "[labels]\nnames = [\"a\", \"b\"]\nthreshold = 0.0\nneutral_band = -0.5\n", "neutral_band must be ≥ 0"),
            (base + "[labels]\nnames = [\"a\", \"b\"]\nthreshold = nan\n", "must be a finite number"),
        ]
        for (text, expected) in cases {
            let e: String
            do { _ = try TaskSpec.load(try task(text)); e = "no error" } catch { e = "\(error)" }
            #expect(e.contains(expected), "expected \(expected), got \(e)")
        }
        // CRLF task files simply work.
        let crlf = (base + "[labels]\nnames = [\"a\"]\n").replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try TaskSpec.load(try task(crlf)).labels == ["a"])
    }

    @Test func strayQuoteDoesNotSwallowRows() throws {
        var csv = "label,text\n"
        for i in 0..<10 { csv += "ham,row \(i)\n" }
        csv += "spam,\"unclosed quote here\n"
        for i in 10..<40 { csv += "ham,row \(i)\n" }
        csv += "ham,\"a later, quoted field\"\n"
        let rows = try DataReader.parse(Data(csv.utf8), path: "d.csv", format: .csv)
        let bad = rows.filter { $0.error != nil }
        #expect(bad.count == 1 && bad[0].line == 12, "\(bad.map { "\($0.line): \($0.error!)" })")
        #expect("\(bad[0].error!)".contains("quote"))
        #expect(rows.filter { $0.error == nil }.count == 41)
        // A quote never closed at all: the same, up to the end of the file.
        let open = try DataReader.parse(Data("label,text\nham,\"never closed\nham,next\n".utf8), path: "d.csv", format: .csv)
        #expect(open.filter { $0.error == nil }.map { $0.fields["text"] } == ["next"])
    }

    @Test func safetensorsHeaderLengthIsBounded() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("m.safetensors").path
        for header: [UInt8] in [[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [0, 0, 0, 0, 0, 0, 0, 0x80]] {
            try Data(header + Array("{}".utf8)).write(to: URL(fileURLWithPath: p))
            #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsFile(path: p) }
        }
        // A shape whose element count overflows.
        let json = #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#
        var len = UInt64(json.utf8.count).littleEndian
        let bytes = withUnsafeBytes(of: &len) { Array($0) } + Array(json.utf8) + [UInt8](repeating: 0, count: 16)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsFile(path: p) }
    }

    @Test func filesSayWhyTheyCannotBeRead() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        func message(_ path: String) -> String {
            do { _ = try Recipe.load(path); return "no error" } catch { return "\(error)" }
        }
        #expect(message(dir.appendingPathComponent("missing.fuse").path).contains("No such file or directory"))
        #expect(message(dir.path).contains("Is a directory"))
        let bad = dir.appendingPathComponent("bad.fuse").path
        try Data(Array("fusion f\nbase b\nst".utf8) + [0xFF] + Array("ore s\n".utf8)).write(to: URL(fileURLWithPath: bad))
        #expect(message(bad).contains("bad.fuse:3:3: error: invalid UTF-8 (byte 0xFF)"), "\(message(bad))")
    }

    /// Options are checked before any work, through the real executable.
    @Test func cliRejectsBadOptionsBeforeWork() throws {
        let bin = try FaultInjectionTests.afusionBinary()
        let cases: [([String], String)] = [
            (["train-adapter", "--task", "tasks/trec.toml", "--epochs", "0"], "--epochs must be in 1"),
            (["train-adapter", "--task", "tasks/trec.toml", "--batch=-3"], "--batch must be in 1"),
            (["train-adapter", "--task", "tasks/trec.toml", "--lr=-1"], "--lr must be a finite number"),
            (["train-adapter", "--task", "tasks/trec.toml", "--lr", "nan"], "--lr must be a finite number"),
            (["train-adapter", "--task", "tasks/trec.toml", "--max-dev=-5"], "--max-dev must be in 1"),
            (["train-adapter", "--task", "tasks/trec.toml", "--name", "evil/child"], "is not a valid name"),
            (["train-adapter", "--task", "tasks/trec.toml", "--threads", "0"], "--threads must be in 1"),
            (["predict", "--adapter", "x", "--max-len", "0"], "--max-len must be in 8"),
            (["eval", "--adapter", "x", "--split", "validation"], "--split must be dev, test or train"),
            // A negative value reaches the option's own check (ArgumentParser said "Missing value").
            (["train-adapter", "--task", "tasks/trec.toml", "--epochs", "-1"], "--epochs must be in 1…100000, got -1"),
            (["train-adapter", "--task", "tasks/trec.toml", "--scaling", "1e30"], "--scaling must be in (0, 100], got 1e+30"),
            (["train-adapter", "--task", "tasks/trec.toml", "--scaling", "0"], "--scaling must be in (0, 100], got 0.0"),
            // Options the method does not read are refused, not ignored.
            (["train-adapter", "--task", "tasks/trec.toml", "--method", "lora", "--config", "houlsby"], "--config does not apply to --method lora"),
            (
                ["train-adapter", "--task", "tasks/trec.toml", "--method", "prompt", "--lora-rank", "4"],
                "--lora-rank does not apply to --method prompt"
            ),
            (
                ["train-adapter", "--task", "tasks/trec.toml", "--method", "prompt", "--leave-out", "0"],
                "--leave-out does not apply to --method prompt"
            ),
            (["train-adapter", "--task", "tasks/trec.toml", "--method", "lora", "--scaling", "2"], "--scaling does not apply to --method lora"),
        ]
        for (args, expected) in cases {
            let p = Process()
            p.executableURL = bin
            p.arguments = args
            p.currentDirectoryURL = Support.packageRoot
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus != 0 && text.contains(expected), "\(args): exit \(p.terminationStatus), \(text)")
        }
    }
}

extension InputValidationTests {
    @Test func spacedSignIsExplained() {
        let e = recipeError(Self.head + "compose fuse(a, b)\noptions lambda - 0.5\n")
        #expect(e.contains("a space splits the number '- 0.5'"), "\(e)")
    }
}

extension InputValidationTests {
    /// Found by `make fuzz`: toml++ (TOMLKit, replaced by `TOMLParser`) aborted on these.
    @Test func tomlInputsThatAbortedTheOldParser() throws {
        for (text, expected) in [
            ("name = \"x\"\n[#]abel\n", "t.toml:2:2: error: TOML: expected a key"),
            ("a = [1,,2]\n", "t.toml:1:8: error: TOML: expected a value"),
        ] {
            let e: String
            do { _ = try TaskSpec.load(try task(text)); e = "no error" } catch { e = "\(error)" }
            #expect(e.contains(expected), "\(e)")
        }
    }
}

extension InputValidationTests {
    /// Excel writes CSV with a byte-order mark and CRLF line ends: the header still names `label`.
    @Test func csvWithByteOrderMarkAndCRLF() throws {
        let csv = Data([0xEF, 0xBB, 0xBF] + Array("label,text\r\nham,hello\r\nspam,\"win, now\"\r\n".utf8))
        let rows = try DataReader.parse(csv, path: "d.csv", format: .csv)
        #expect(rows.map { $0.fields["label"] } == ["ham", "spam"])
        #expect(rows.map { $0.fields["text"] } == ["hello", "win, now"])
    }
}
