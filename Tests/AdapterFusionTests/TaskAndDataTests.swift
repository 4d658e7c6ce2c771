import AdapterFusion
import Foundation
import Testing

/// Task files and data readers on small files written by the tests.
@Suite struct TaskAndDataTests {
    let dir: URL

    init() throws { dir = try Support.tempDir() }

    func write(_ name: String, _ text: String) throws -> String {
        let p = dir.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    func task(_ body: String) throws -> String { try write("t.toml", body) }

    static let csvTask = """
        name = "spam"
        metric = "mcc"
        [data]
        files = ["d.csv"]
        format = "csv"
        text = "text"
        label = "spam"
        [labels]
        names = ["ham", "spam"]
        values = ["0", "1"]
        """

    @Test func csvWithQuotesNewlinesAndHashSplit() throws {
        var rows = ",spam,text\n"
        for i in 0..<200 { rows += "\(i),\(i % 3 == 0 ? 1 : 0),\"msg \(i), with comma and \"\"quotes\"\"\nand a newline\"\n" }
        _ = try write("d.csv", rows)
        let spec = try TaskSpec.load(try task(Self.csvTask))
        #expect(spec.files == [dir.appendingPathComponent("d.csv").path])
        let ds = try Dataset.load(spec)
        #expect(ds.train.count + ds.dev.count + ds.test.count == 200)
        #expect(ds.dev.count > 5 && ds.test.count > 5 && ds.train.count > 140)
        let ex = (ds.train + ds.dev + ds.test).first { $0.text.hasPrefix("msg 3,") }!
        #expect(ex.text == "msg 3, with comma and \"quotes\"\nand a newline" && ex.label == 1)
        // The record for i = 3 starts on line 2 + 2·3 (each record spans two lines).
        #expect(ex.origin.hasSuffix("d.csv:8"))
        // Stable: the same split on a second load, whatever the order of rows.
        var reversed = ",spam,text\n"
        for i in (0..<200).reversed() { reversed += "\(i),\(i % 3 == 0 ? 1 : 0),\"msg \(i), with comma and \"\"quotes\"\"\nand a newline\"\n" }
        _ = try write("d.csv", reversed)
        let again = try Dataset.load(spec)
        #expect(Set(again.dev.map(\.text)) == Set(ds.dev.map(\.text)))
    }

    @Test func badRowsNameFileAndLine() throws {
        _ = try write("d.csv", ",spam,text\n0,0,fine\n1,2,unknown label\n2,0,\n3,1\n4,0,\"ok\"\n")
        let spec = try TaskSpec.load(try task(Self.csvTask))
        #expect { try Dataset.load(spec) } throws: { e in
            let s = "\(e)"
            return s.contains("d.csv:3") && s.contains("unknown label '2'") && s.contains("--skip-bad-rows")
        }
        let ds = try Dataset.load(spec, skipBadRows: true)
        #expect(ds.train.count + ds.dev.count + ds.test.count == 2)
        // The same, declared by the task file.
        let declared = try TaskSpec.load(
            try task(Self.csvTask.replacingOccurrences(of: "format = \"csv\"", with: "format = \"csv\"\nbad_rows = \"skip\"")))
        #expect(try Dataset.load(declared).skipped == ds.skipped)
        #expect(ds.skipped["unknown label '…'"] == 1)
        #expect(ds.skipped["empty text"] == 1)
        #expect(ds.skipped.keys.contains { $0.contains("fields where the header has 3") })
    }

    @Test func invalidUTF8IsABadRow() throws {
        var bytes = Array(",spam,text\n0,0,good\n1,1,bad ".utf8)
        bytes += [0xC3, 0x28]
        bytes += Array("\n".utf8)
        try Data(bytes).write(to: dir.appendingPathComponent("d.csv"))
        let spec = try TaskSpec.load(try task(Self.csvTask))
        #expect { try Dataset.load(spec) } throws: { "\($0)".contains("d.csv:3") && "\($0)".contains("invalid UTF-8") }
    }

    @Test func missingColumn() throws {
        _ = try write("d.csv", ",spam,body\n0,0,hello\n")
        let spec = try TaskSpec.load(try task(Self.csvTask))
        #expect { try Dataset.load(spec) } throws: {
            "\($0)".contains("d.csv:2") && "\($0)".contains("missing field 'text'") && "\($0)".contains("body")
        }
    }

    @Test func labelTextThresholdAndRegression() throws {
        _ = try write("q.txt", "skip me\nDESC:manner How did it happen ?\nNUM:date When was it ?\n")
        let spec = try TaskSpec.load(
            try task(
                """
                name = "q"
                [data]
                files = ["q.txt"]
                format = "label-text"
                first_line = 2
                label_delimiter = ":"
                [labels]
                names = ["DESC", "NUM"]
                [split]
                dev = 0.5
                test = 0.0
                """))
        let ds = try Dataset.load(spec)
        let all = (ds.train + ds.dev).sorted { $0.origin < $1.origin }
        #expect(all.map(\.text) == ["How did it happen ?", "When was it ?"] && all.map(\.label) == [0, 1])

        _ = try write("s.tsv", "id\tsentiment\ttext\n1\t2.5\tgreat\n2\t0.2\tmeh\n3\t-1.5\tbad\n")
        let bin = try TaskSpec.load(
            try task(
                """
                name = "s"
                [data]
                files = ["s.tsv"]
                format = "tsv"
                label = "sentiment"
                [labels]
                names = ["negative", "positive"]
                threshold = 0.0
                neutral_band = 0.5
                """))
        let b = try Dataset.load(bin)
        #expect(b.skipped["neutral score"] == 1)
        #expect(Set((b.train + b.dev + b.test).map { "\($0.text)=\($0.label)" }) == ["great=1", "bad=0"])
        let reg = try TaskSpec.load(
            try task(
                """
                name = "r"
                metric = "spearman"
                [data]
                files = ["s.tsv"]
                format = "tsv"
                label = "sentiment"
                [labels]
                regression = true
                """))
        #expect(reg.isRegression)
        #expect(
            Set(try Dataset.load(reg).train.map(\.value) + Dataset.load(reg).dev.map(\.value) + Dataset.load(reg).test.map(\.value)) == [
                2.5, 0.2, -1.5,
            ])
    }

    @Test func bigbenchPairsAndJSONL() throws {
        let examples = (0..<30).map { i in
            #"{"input": "Title: passage \#(i)\nClaim: claim \#(i)", "target_scores": {"True": \#(i % 2), "False": \#(1 - i % 2)}}"#
        }.joined(separator: ",")
        _ = try write("task.json", #"{"name": "x", "examples": [\#(examples)]}"#)
        let spec = try TaskSpec.load(
            try task(
                """
                name = "bb"
                [data]
                files = ["task.json"]
                format = "bigbench"
                pair_separator = "\\nClaim: "
                [labels]
                names = ["True", "False"]
                """))
        let ds = try Dataset.load(spec)
        let e = (ds.train + ds.dev + ds.test).first { $0.text == "Title: passage 3" }!
        #expect(e.pair == "claim 3" && e.label == 0)
        // Two empty inputs: an error naming the example, or, skipped, one reason counted twice.
        _ = try write("task.json", #"{"examples": [{"input": "", "target": "True"}, {"input": "   ", "target": "False"}, \#(examples)]}"#)
        #expect { try Dataset.load(spec) } throws: { "\($0)".contains("example #0: input has no pair separator") }
        let skipping = try TaskSpec.load(
            try task(
                """
                name = "bb"
                [data]
                files = ["task.json"]
                format = "bigbench"
                bad_rows = "skip"
                [labels]
                names = ["True", "False"]
                """))
        let skipped = try Dataset.load(skipping)
        #expect(skipped.skipped == ["empty text": 2])
        _ = try write("d.jsonl", #"{"sentence": "a", "y": 1}"# + "\n\n" + #"{"sentence": "b", "y": 0}"# + "\nnot json\n")
        let j = try TaskSpec.load(
            try task(
                """
                name = "j"
                [data]
                files = ["d.jsonl"]
                format = "jsonl"
                text = "sentence"
                label = "y"
                [labels]
                names = ["no", "yes"]
                values = ["0", "1"]
                """))
        #expect { try Dataset.load(j) } throws: { "\($0)".contains("d.jsonl:4") && "\($0)".contains("not a JSON object") }
    }

    /// JSON true/false labels read as the words (BoolQ's `"label": true`), not as 1/0; numbers
    /// keep their digits. Fails if booleans go through `NSNumber.stringValue` ("1"/"0").
    @Test func jsonBooleanLabels() throws {
        _ = try write("b.jsonl", #"{"q": "a", "y": true}"# + "\n" + #"{"q": "b", "y": false}"# + "\n" + #"{"q": "c", "y": 1}"# + "\n")
        let spec = try TaskSpec.load(
            try task(
                """
                name = "b"
                [data]
                files = ["b.jsonl"]
                format = "jsonl"
                text = "q"
                label = "y"
                bad_rows = "skip"
                [labels]
                names = ["no", "yes"]
                values = ["false", "true"]
                [split]
                dev = 0.01
                test = 0.0
                """))
        let ds = try Dataset.load(spec)
        let all = ds.train + ds.dev + ds.test
        #expect(Dictionary(uniqueKeysWithValues: all.map { ($0.text, $0.label) }) == ["a": 1, "b": 0])
        #expect(ds.skipped == ["unknown label '…'": 1])  // the number 1 is not the word true
    }

    /// `quoted = true` reads TSV fields quoted as in CSV (BANKING77's files hold multi-line quoted
    /// questions); without it a quote is a character and the broken lines are bad rows. Fails if
    /// `quoted` is ignored (the record would split into a bad row and a fragment).
    @Test func quotedTSV() throws {
        _ = try write("q.tsv", "text\tlabel\n\"two\nlines, a \"\"quote\"\" and\ta tab\"\tx\nplain\ty\n")
        func spec(_ quoted: String) throws -> TaskSpec {
            try TaskSpec.load(
                try task(
                    """
                    name = "q"
                    [data]
                    files = ["q.tsv"]
                    format = "tsv"
                    \(quoted)
                    [labels]
                    names = ["x", "y"]
                    """))
        }
        let rows = try DataReader.read(dir.appendingPathComponent("q.tsv").path, format: .tsv, quotedTSV: true)
        #expect(rows.map { $0.fields["text"] } == ["two\nlines, a \"quote\" and\ta tab", "plain"])
        #expect(rows.map(\.line) == [2, 4])
        #expect(try Dataset.load(try spec("quoted = true")).skipped.isEmpty)
        #expect { try Dataset.load(try spec("")) } throws: { "\($0)".contains("q.tsv:2") }
        #expect { try spec("quoted = 1") } throws: { "\($0)".contains("t.toml:5:1: error: '[data] quoted' must be true or false") }
    }

    /// Mistakes in task files: each error names file:line:col and, where it can, a fix.
    @Test func taskFileErrors() throws {
        let cases: [(String, String)] = [
            ("name = \"x\"\n[data]\nfiles = [\"a\"]\nformat = \"xml\"\n[labels]\nnames = [\"a\"]\n", "t.toml:4:1: error: unknown format 'xml'"),
            ("name = \"x\"\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\nlabl = \"y\"\n[labels]\nnames = [\"a\"]\n", "did you mean 'label'?"),
            ("name = \"x\"\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\n[labels]\nnames = [\"a\", \"a\"]\n", "label names repeat"),
            (
                "name = \"x\"\nmetric = \"pearson\"\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\n[labels]\nnames = [\"a\"]\n",
                "t.toml:2:1: error: metric 'pearson' does not fit"
            ),
            ("name = \"x\"\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\n", "missing section [labels]"),
            ("name = \"x\n", "t.toml:1:"),
            ("name = \"x\"\nmax_length = 4\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\n[labels]\nnames = [\"a\"]\n", "max_length must be in 8...512"),
            (
                "name = \"x\"\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\n[labels]\nnames = [\"a\", \"b\"]\nvalues = [\"1\"]\n",
                "1 values for 2 label names"
            ),
            ("name = \"x y\"\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\n[labels]\nnames = [\"a\"]\n", "must be letters, digits"),
            (
                "name = \"x\"\n[data]\nfiles = [\"a\"]\nformat = \"csv\"\n[labels]\nnames = [\"a\"]\n[split]\ndev = 0.7\ntest = 0.5\n",
                "dev + test < 1"
            ),
        ]
        for (text, expected) in cases {
            #expect { try TaskSpec.load(try task(text)) } throws: { e in
                let s = "\(e)"
                if !s.contains(expected) { print("got: \(s)") }
                return s.contains(expected)
            }
        }
    }

    @Test func shippedTasksParse() throws {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: Support.packageRoot.appendingPathComponent("tasks").path)
            .filter { $0.hasSuffix(".toml") }
        #expect(tasks.count >= 6)
        // Every data path lies in the folder of a pinned source (scripts/sources.toml), so
        // `scripts/sources.py` knows which source each task needs.
        let manifest = try String(contentsOf: Support.packageRoot.appendingPathComponent("scripts/sources.toml"), encoding: .utf8)
        let folders = manifest.split(separator: "\n").filter { $0.hasPrefix("dest = \"data/") }
            .map { "/" + $0.dropFirst("dest = \"".count).dropLast() + "/" }
        #expect(folders.count >= 5)
        for t in tasks {
            let spec = try TaskSpec.load(Support.packageRoot.appendingPathComponent("tasks/\(t)").path)
            #expect(spec.name + ".toml" == t)
            var paths = spec.files
            if case let .files(train, dev, test) = spec.split { paths += train + dev + test }
            #expect(!paths.isEmpty)
            for p in paths { #expect(folders.contains { p.contains($0) }, "\(t): \(p) is in no pinned source's folder") }
        }
    }
}

@Suite struct MetricTests {
    @Test func classification() {
        let gold = [0, 0, 1, 1, 2, 2]
        let pred = [0, 1, 1, 1, 2, 0]
        #expect(Metrics.accuracy(pred, gold) == 4.0 / 6)
        // Per class F1: c0 = 2·1/(2+1+1) = 0.5, c1 = 2·2/(4+1) = 0.8, c2 = 2·1/(2+0+1) = 2/3.
        #expect(abs(Metrics.macroF1(pred, gold, classes: 3) - (0.5 + 0.8 + 2.0 / 3) / 3) < 1e-12)
        #expect(Metrics.matthews(gold, gold, classes: 3) == 1)
        // Binary MCC by the textbook formula: tp 1, tn 2, fp 1, fn 1.
        let mcc = Metrics.matthews([1, 1, 0, 0, 0], [1, 0, 1, 0, 0], classes: 2)
        #expect(abs(mcc - (1.0 * 2 - 1 * 1) / ((2.0 * 2 * 3 * 3).squareRoot())) < 1e-12)
    }

    @Test func correlations() {
        #expect(abs(Metrics.pearson([1, 2, 3], [2, 4, 6]) - 1) < 1e-12)
        #expect(abs(Metrics.pearson([1, 2, 3], [3, 2, 1]) + 1) < 1e-12)
        // Monotone but not linear: Spearman 1, Pearson below 1; ties get mean ranks.
        #expect(abs(Metrics.spearman([1, 2, 3, 4], [1, 4, 9, 100]) - 1) < 1e-12)
        #expect(Metrics.pearson([1, 2, 3, 4], [1, 4, 9, 100]) < 0.9)
        #expect(abs(Metrics.spearman([1, 1, 2], [1, 2, 3]) - 0.8660254037844386) < 1e-12)
    }

    @Test func bucketingAndSchedule() {
        var rng = SeededRNG(seed: 1)
        let lengths = (0..<1000).map { _ in Int(rng.next() % 100) + 3 }
        let b = Batching.bucketed(lengths: lengths, batchSize: 32, rng: &rng)
        #expect(b.flatMap { $0 }.sorted() == Array(0..<1000))
        let naive = stride(from: 0, to: 1000, by: 32).map { Array($0..<min($0 + 32, 1000)) }
        #expect(Batching.paddingRatio(b, lengths: lengths) < 0.1 * Batching.paddingRatio(naive, lengths: lengths) + 0.05)
        let s = LinearSchedule(peak: 1, warmupSteps: 10, totalSteps: 110)
        #expect(s.rate(at: 0) == 0.1 && s.rate(at: 9) == 1 && s.rate(at: 60) == 0.5 && s.rate(at: 110) == 0)
    }

    @Test func sha256Vectors() {
        #expect(SHA256.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let long = Data(String(repeating: "a", count: 1_000_000).utf8)
        #expect(SHA256.hex(long) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
