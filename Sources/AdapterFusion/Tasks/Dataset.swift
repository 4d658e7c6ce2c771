import Foundation

/// One labelled example.
public struct Example: Sendable {
    public var text: String
    public var pair: String?
    /// Class index (classification) — unused for regression.
    public var label: Int
    /// Target value (regression) — unused for classification.
    public var value: Float
    /// Where it came from, for messages: `file:line` or `file#index`.
    public var origin: String

    public init(text: String, pair: String? = nil, label: Int = 0, value: Float = 0, origin: String = "") {
        self.text = text; self.pair = pair; self.label = label; self.value = value; self.origin = origin
    }
}

/// A task's examples, split into train, dev and test, with what was skipped.
public struct Dataset: Sendable {
    public let spec: TaskSpec
    public var train: [Example]
    public var dev: [Example]
    public var test: [Example]
    /// Rows skipped, by reason (bad rows with --skip-bad-rows; neutral scores).
    public var skipped: [String: Int]

    /// Reads, interprets and splits a task's data. A bad row (missing field, unknown label,
    /// empty text, invalid UTF-8, unparsable number) stops loading with an error naming file and
    /// line, unless `skipBadRows` (or the task file's `bad_rows = "skip"`), when it is counted in
    /// `skipped` instead.
    public static func load(_ spec: TaskSpec, skipBadRows: Bool = false) throws -> Dataset {
        let skipBadRows = skipBadRows || spec.skipBadRows
        var skipped: [String: Int] = [:]
        func bad(_ e: SourceError) throws {
            let skip = "pass --skip-bad-rows to skip and count such rows"
            if !skipBadRows {
                throw SourceError(
                    file: e.file, line: e.line, column: e.column, e.message,
                    hint: e.hint.map { "\($0); or \(skip)" } ?? "fix the row, or \(skip)",
                    sourceLine: e.sourceLine)
            }
            // Count by kind: the example number and quoted values ('spam', 'text') are elided so
            // like rows share a reason.
            var message = Substring(e.message)
            if message.hasPrefix("example #"), let colon = message.range(of: ": ") { message = message[colon.upperBound...] }
            let kind = message.split(separator: "'", omittingEmptySubsequences: false).enumerated()
                .map { $0.offset % 2 == 1 ? "…" : String($0.element) }.joined(separator: "'")
            skipped[kind, default: 0] += 1
        }
        func examples(from files: [String]) throws -> [Example] {
            var out: [Example] = []
            for file in files {
                for row in try DataReader.read(file, format: spec.format, firstLine: spec.firstLine, quotedTSV: spec.quotedTSV) {
                    if let e = row.error { try bad(e); continue }
                    if let ex = try interpret(row, spec, bad: bad, neutral: { skipped["neutral score", default: 0] += 1 }) { out.append(ex) }
                }
            }
            return out
        }
        switch spec.split {
        case let .hash(dev, test):
            var ds = Dataset(spec: spec, train: [], dev: [], test: [], skipped: [:])
            for ex in try examples(from: spec.files) {
                let u = Double(stableHash(ex.text + "\u{1F}" + (ex.pair ?? "")) >> 11) / Double(1 << 53)
                if u < test { ds.test.append(ex) } else if u < test + dev { ds.dev.append(ex) } else { ds.train.append(ex) }
            }
            ds.skipped = skipped
            return ds
        case let .files(train, dev, test):
            let ds = Dataset(
                spec: spec, train: try examples(from: train), dev: try examples(from: dev),
                test: try examples(from: test), skipped: skipped)
            return ds
        }
    }

    /// FNV-1a, 64 bit: stable across runs and platforms (Swift's `hashValue` is seeded per process).
    public static func stableHash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        // Final avalanche (SplitMix64) so the top bits, used for the split, mix all input bits.
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }

    static func interpret(_ row: RawRow, _ spec: TaskSpec, bad: (SourceError) throws -> Void, neutral: () -> Void) throws -> Example? {
        let origin = row.line > 0 ? "\(row.file):\(row.line)" : "\(row.file)#\(row.index)"
        func fail(_ msg: String, hint: String? = nil) throws -> Example? {
            try bad(SourceError(file: row.file, line: row.line, row.line > 0 ? msg : "example #\(row.index): \(msg)", hint: hint))
            return nil
        }
        // Text (and pair).
        var text: String
        var pair: String?
        if spec.format == .bigbench {
            guard let input = row.fields["input"] else { return try fail("missing field 'input'") }
            if let sep = spec.pairSeparator {
                guard let r = input.range(of: sep) else { return try fail("input has no pair separator \(sep.debugDescription)") }
                text = String(input[..<r.lowerBound]); pair = String(input[r.upperBound...])
            } else {
                text = input
            }
        } else {
            guard let t = row.fields[spec.textField] else {
                return try fail("missing field '\(spec.textField)'", hint: "fields here: " + row.fields.keys.sorted().joined(separator: ", "))
            }
            text = t
            if let pf = spec.pairField {
                guard let p = row.fields[pf] else { return try fail("missing field '\(pf)'") }
                pair = p
            }
        }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || pair?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty == true {
            return try fail("empty text")
        }
        // Label.
        guard var raw = row.fields[spec.labelField] else { return try fail("missing field '\(spec.labelField)'") }
        raw = raw.trimmingCharacters(in: .whitespaces)
        if let d = spec.labelDelimiter, let r = raw.range(of: d) { raw = String(raw[..<r.lowerBound]) }
        if spec.isRegression || spec.threshold != nil {
            guard let score = Double(raw), score.isFinite else { return try fail("label '\(raw)' is not a number") }
            if spec.isRegression { return Example(text: text, pair: pair, label: 0, value: Float(score), origin: origin) }
            let t = spec.threshold!
            if abs(score - t) < spec.neutralBand || (spec.neutralBand == 0 && score == t) { neutral(); return nil }
            return Example(text: text, pair: pair, label: score > t ? 1 : 0, value: 0, origin: origin)
        }
        guard let k = spec.labelValues.firstIndex(of: raw) else {
            return try fail(
                "unknown label '\(raw)'",
                hint: didYouMean(raw, in: spec.labelValues)
                    ?? "the task's labels are " + spec.labelValues.joined(separator: ", "))
        }
        return Example(text: text, pair: pair, label: k, value: 0, origin: origin)
    }
}

/// The three splits by name.
public enum SplitName: String, CaseIterable, Sendable {
    case train, dev, test
}

extension Dataset {
    /// A seeded sample of at most `n` examples (all of them when `n` is nil or large enough),
    /// in their original order.
    public static func sample(_ xs: [Example], _ n: Int?, seed: UInt64) -> [Example] {
        guard let n, n < xs.count else { return xs }
        guard n > 0 else { return [] }
        var rng = SeededRNG(seed: seed)
        var idx = Array(xs.indices)
        idx.shuffle(using: &rng)
        return idx.prefix(n).sorted().map { xs[$0] }
    }

    /// The examples of `split`, sampled with the seeds training used (train: seed, dev: seed + 1,
    /// test: seed + 2), so the dev sample of a run is the one its recorded metric was measured on
    /// (`max` nil on dev means the training run's `maxDev`).
    public func examples(_ split: SplitName, max: Int?, settings: TrainingConfig) -> [Example] {
        switch split {
        case .train: return Self.sample(train, max, seed: settings.seed)
        case .dev: return Self.sample(dev, max ?? settings.maxDev, seed: settings.seed &+ 1)
        case .test: return Self.sample(test, max, seed: settings.seed &+ 2)
        }
    }
}
