import Foundation

/// A task declared in a TOML file under `tasks/`: where its data is, how to read it, what it
/// predicts and how it is scored. The grammar is documented in the README ("Task files").
public struct TaskSpec: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        /// Comma-separated with a header row; RFC 4180 quoting.
        case csv
        /// Tab-separated with a header row; no quoting.
        case tsv
        /// One JSON object per line.
        case jsonl
        /// `LABEL text…` per line: the first whitespace-separated token is the label.
        case labelText = "label-text"
        /// A BIG-bench `task.json`: `examples[].input` and the argmax of `target_scores`.
        case bigbench
    }

    public enum Metric: String, Sendable, CaseIterable {
        case accuracy
        case macroF1 = "macro_f1"
        case mcc, pearson, spearman
        public var isRegression: Bool { self == .pearson || self == .spearman }
    }

    /// How examples are divided into train, dev and test.
    public enum Split: Sendable, Equatable {
        /// By a stable hash (FNV-1a) of the example's text: the same text always lands in the
        /// same split, whatever the file order.
        case hash(dev: Double, test: Double)
        /// Given files for each split.
        case files(train: [String], dev: [String], test: [String])
    }

    public var name: String
    public var description: String
    /// The task file itself.
    public var path: String
    /// Data files (absolute, resolved against the task file's folder).
    public var files: [String]
    public var format: Format
    public var textField: String
    /// Field of the second text of a pair task (csv, tsv, jsonl).
    public var pairField: String?
    /// BIG-bench: the input is split at this separator into a text pair.
    public var pairSeparator: String?
    public var labelField: String
    /// tsv: fields may be quoted as in CSV (`[data] quoted = true`; default: a quote is a character).
    public var quotedTSV: Bool
    /// Data lines before this 1-based line are skipped (label-text).
    public var firstLine: Int
    /// label-text: keep only the part of the label before this delimiter (e.g. TREC's coarse type).
    public var labelDelimiter: String?
    /// Label names, in output order. Empty for regression.
    public var labels: [String]
    /// How each label is spelled in the data, aligned with `labels`.
    public var labelValues: [String]
    /// Binarise a numeric score: score > threshold → labels[1], else labels[0].
    public var threshold: Double?
    /// With `threshold`: scores within this distance of it are neutral and skipped (counted).
    public var neutralBand: Double
    public var metric: Metric
    public var maxLength: Int
    public var split: Split
    /// The task file's `bad_rows = "skip"`: skip and count malformed rows of this (known dirty)
    /// data instead of stopping, as `--skip-bad-rows` does.
    public var skipBadRows: Bool

    public var isRegression: Bool { labels.isEmpty }

    /// Parses and validates a task file. Errors name the file, line and column.
    public static func load(_ path: String) throws -> TaskSpec {
        try parse(try TextFile.text(path, what: "cannot read task file"), path: path)
    }

    public static func parse(_ text: String, path: String) throws -> TaskSpec {
        let text = text.replacingOccurrences(of: "\r\n", with: "\n")  // positions count in LF text
        let root = try TOMLParser.parse(text, file: path)
        let reader = TableReader(path: path, text: text)
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let base = (absolute as NSString).deletingLastPathComponent
        func resolve(_ f: String) -> String { f.hasPrefix("/") ? f : ((base as NSString).appendingPathComponent(f) as NSString).standardizingPath }

        try reader.allowOnly(root, ["name", "description", "metric", "max_length", "data", "labels", "split"], section: nil)
        let name = try reader.string(root, "name", section: nil)
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw reader.error(at: "name", section: nil, "task name '\(name)' must be letters, digits, '_' or '-'")
        }
        let dataT = try reader.table(root, "data")
        try reader.allowOnly(
            dataT, ["files", "format", "text", "pair", "pair_separator", "label", "first_line", "label_delimiter", "bad_rows", "quoted"],
            section: "data")
        let badRows = try reader.optionalString(dataT, "bad_rows", section: "data") ?? "error"
        guard badRows == "error" || badRows == "skip" else {
            throw reader.error(at: "bad_rows", section: "data", "bad_rows must be \"error\" or \"skip\", not '\(badRows)'")
        }
        let formatName = try reader.string(dataT, "format", section: "data")
        guard let format = Format(rawValue: formatName) else {
            throw reader.error(
                at: "format", section: "data", "unknown format '\(formatName)'",
                hint: "one of " + Format.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let quoted = try reader.optionalBool(dataT, "quoted", section: "data") ?? false
        if quoted && format != .tsv { throw reader.error(at: "quoted", section: "data", "quoted applies to tsv only (csv is always quoted)") }
        let labelsT = try reader.table(root, "labels")
        try reader.allowOnly(labelsT, ["names", "values", "threshold", "neutral_band", "regression"], section: "labels")
        let regression = try reader.optionalBool(labelsT, "regression", section: "labels") ?? false
        let names = try reader.optionalStrings(labelsT, "names", section: "labels") ?? []
        if regression != names.isEmpty {
            throw reader.error(
                at: regression ? "names" : "labels", section: regression ? "labels" : nil,
                regression ? "a regression task has no label names" : "[labels] needs names = [...] (or regression = true)")
        }
        if Set(names).count != names.count { throw reader.error(at: "names", section: "labels", "label names repeat") }
        let values = try reader.optionalStrings(labelsT, "values", section: "labels") ?? names
        if values.count != names.count {
            throw reader.error(at: "values", section: "labels", "\(values.count) values for \(names.count) label names")
        }
        let threshold = try reader.optionalDouble(labelsT, "threshold", section: "labels")
        let neutralBand = try reader.optionalDouble(labelsT, "neutral_band", section: "labels") ?? 0
        guard neutralBand >= 0 else { throw reader.error(at: "neutral_band", section: "labels", "neutral_band must be ≥ 0, got \(neutralBand)") }
        if labelsT["neutral_band"] != nil && threshold == nil {
            throw reader.error(at: "neutral_band", section: "labels", "neutral_band needs a threshold")
        }
        let firstLine = try reader.optionalInt(dataT, "first_line", section: "data") ?? 1
        guard firstLine >= 1 else { throw reader.error(at: "first_line", section: "data", "first_line counts from 1, got \(firstLine)") }
        if threshold != nil && names.count != 2 {
            throw reader.error(at: "threshold", section: "labels", "a threshold binarises scores, so it needs exactly 2 label names")
        }
        let metric = try Self.metric(root, reader: reader, regression: regression)
        let split = try Self.split(root, reader: reader, resolve: resolve)
        let files: [String]
        if case .files = split { files = [] } else { files = try reader.strings(dataT, "files", section: "data").map(resolve) }
        let maxLength = try reader.optionalInt(root, "max_length", section: nil) ?? 128
        guard (8...512).contains(maxLength) else { throw reader.error(at: "max_length", section: nil, "max_length must be in 8...512") }
        return TaskSpec(
            name: name, description: try reader.optionalString(root, "description", section: nil) ?? "",
            path: path, files: files, format: format,
            textField: try reader.optionalString(dataT, "text", section: "data") ?? "text",
            pairField: try reader.optionalString(dataT, "pair", section: "data"),
            pairSeparator: try reader.optionalString(dataT, "pair_separator", section: "data"),
            labelField: try reader.optionalString(dataT, "label", section: "data") ?? "label",
            quotedTSV: quoted, firstLine: firstLine,
            labelDelimiter: try reader.optionalString(dataT, "label_delimiter", section: "data"),
            labels: names, labelValues: values, threshold: threshold,
            neutralBand: neutralBand,
            metric: metric, maxLength: maxLength, split: split, skipBadRows: badRows == "skip")
    }

    /// The top-level `metric`, checked against the kind of task (default: accuracy or Pearson).
    static func metric(_ root: TOMLTable, reader: TableReader, regression: Bool) throws -> Metric {
        let metricName = try reader.optionalString(root, "metric", section: nil) ?? (regression ? "pearson" : "accuracy")
        guard let metric = Metric(rawValue: metricName) else {
            throw reader.error(
                at: "metric", section: nil, "unknown metric '\(metricName)'",
                hint: "one of " + Metric.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if metric.isRegression != regression {
            throw reader.error(
                at: "metric", section: nil, "metric '\(metricName)' does not fit a \(regression ? "regression" : "classification") task")
        }
        return metric
    }

    /// The `[split]` section (80/10/10 by hash when absent).
    static func split(_ root: TOMLTable, reader: TableReader, resolve: (String) -> String) throws -> Split {
        var split = Split.hash(dev: 0.1, test: 0.1)
        if let splitT = root["split"]?.table {
            try reader.allowOnly(splitT, ["rule", "dev", "test", "train_files", "dev_files", "test_files"], section: "split")
            switch try reader.optionalString(splitT, "rule", section: "split") ?? "hash" {
            case "hash":
                let dev = try reader.optionalDouble(splitT, "dev", section: "split") ?? 0.1
                let test = try reader.optionalDouble(splitT, "test", section: "split") ?? 0.1
                guard dev > 0, test >= 0, dev + test < 1 else {
                    throw reader.error(at: "dev", section: "split", "fractions must satisfy dev > 0, test ≥ 0, dev + test < 1")
                }
                split = .hash(dev: dev, test: test)
            case "files":
                split = .files(
                    train: try reader.strings(splitT, "train_files", section: "split").map(resolve),
                    dev: try reader.strings(splitT, "dev_files", section: "split").map(resolve),
                    test: (try reader.optionalStrings(splitT, "test_files", section: "split") ?? []).map(resolve))
            case let other:
                throw reader.error(at: "rule", section: "split", "unknown split rule '\(other)'", hint: "hash or files")
            }
        }
        return split
    }
}

/// Typed access to TOML tables with errors that point at the key's line.
struct TableReader {
    let path: String
    let text: String

    /// Line and column of `key = …` inside `[section]` (or the top level), for error messages.
    func locate(_ key: String, section: String?) -> (Int, Int) {
        var current: String? = nil
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") { current = line.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")); continue }
            if current == section, line.hasPrefix(key), line.dropFirst(key.count).trimmingCharacters(in: .whitespaces).hasPrefix("=") {
                let col = raw.distance(from: raw.startIndex, to: raw.firstIndex(where: { !$0.isWhitespace })!) + 1
                return (i + 1, col)
            }
            if section != nil && current == nil && line == "[\(key)]" { return (i + 1, 1) }
        }
        if let section,
            let idx = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex(where: {
                $0.trimmingCharacters(in: .whitespaces) == "[\(section)]"
            })
        {
            return (idx + 1, 1)
        }
        return (0, 0)
    }

    func error(at key: String, section: String?, _ message: String, hint: String? = nil) -> SourceError {
        let (line, col) = locate(key, section: section)
        return SourceError(file: path, text: text, line: line, column: col, message, hint: hint)
    }

    private func name(_ key: String, _ section: String?) -> String { section.map { "[\($0)] \(key)" } ?? key }

    func allowOnly(_ t: TOMLTable, _ keys: [String], section: String?) throws {
        for k in t.keys where !keys.contains(k) {
            throw error(
                at: k, section: section, "unknown key '\(Snippet.cut(name(k, section)))'",
                hint: didYouMean(k, in: keys) ?? "allowed: " + keys.joined(separator: ", "))
        }
    }

    func table(_ t: TOMLTable, _ key: String) throws -> TOMLTable {
        guard let v = t[key] else { throw SourceError(file: path, "missing section [\(key)]") }
        guard let table = v.table else { throw error(at: key, section: nil, "'\(key)' must be a section [\(key)]") }
        return table
    }

    func optionalString(_ t: TOMLTable, _ key: String, section: String?) throws -> String? {
        guard let v = t[key] else { return nil }
        guard let s = v.string else { throw error(at: key, section: section, "'\(name(key, section))' must be a string") }
        return s
    }

    func string(_ t: TOMLTable, _ key: String, section: String?) throws -> String {
        guard let s = try optionalString(t, key, section: section) else {
            throw SourceError(file: path, "missing '\(name(key, section))'")
        }
        return s
    }

    func optionalInt(_ t: TOMLTable, _ key: String, section: String?) throws -> Int? {
        guard let v = t[key] else { return nil }
        guard let i = v.int else { throw error(at: key, section: section, "'\(name(key, section))' must be an integer") }
        return i
    }

    func optionalDouble(_ t: TOMLTable, _ key: String, section: String?) throws -> Double? {
        guard let v = t[key] else { return nil }
        guard let d = v.double ?? v.int.map(Double.init) else { throw error(at: key, section: section, "'\(name(key, section))' must be a number") }
        guard d.isFinite else { throw error(at: key, section: section, "'\(name(key, section))' must be a finite number, not \(d)") }
        return d
    }

    func optionalBool(_ t: TOMLTable, _ key: String, section: String?) throws -> Bool? {
        guard let v = t[key] else { return nil }
        guard let b = v.bool else { throw error(at: key, section: section, "'\(name(key, section))' must be true or false (without quotes)") }
        return b
    }

    func optionalStrings(_ t: TOMLTable, _ key: String, section: String?) throws -> [String]? {
        guard let v = t[key] else { return nil }
        guard let a = v.array, let s = Optional(a.compactMap { $0.string }), s.count == a.count else {
            throw error(at: key, section: section, "'\(name(key, section))' must be a list of strings")
        }
        return s
    }

    func strings(_ t: TOMLTable, _ key: String, section: String?) throws -> [String] {
        guard let s = try optionalStrings(t, key, section: section), !s.isEmpty else {
            throw SourceError(file: path, "missing '\(name(key, section))' (a non-empty list of strings)")
        }
        return s
    }
}
