import Foundation

/// One record of a data file before its label is interpreted.
public struct RawRow: Sendable {
    public var file: String
    /// 1-based line where the record starts (BIG-bench: 0, see `index`).
    public var line: Int
    /// 0-based record index within the file.
    public var index: Int
    public var fields: [String: String]
    /// Set when the record is malformed (the fields are then empty).
    public var error: SourceError?

    static func bad(_ e: SourceError, index: Int) -> RawRow { RawRow(file: e.file, line: e.line, index: index, fields: [:], error: e) }
}

/// Reads the records of data files in the formats `TaskSpec.Format` names.
/// Structural problems (a row with too few fields, invalid UTF-8, malformed JSON) come back in
/// file order as rows carrying a `SourceError` that names file and line.
public enum DataReader {
    public static func read(_ path: String, format: TaskSpec.Format, firstLine: Int = 1, quotedTSV: Bool = false) throws -> [RawRow] {
        let data = try TextFile.data(
            path, what: "cannot read data file",
            hint: "`make data` fetches the shipped tasks' data (`python3 scripts/sources.py list` says which source a task needs)")
        return try parse(data, path: path, format: format, firstLine: firstLine, quotedTSV: quotedTSV)
    }

    /// The rows of a data file's bytes (`path` names it in errors). `quotedTSV`: TSV fields may be
    /// quoted as in CSV (a quoted field holds tabs, newlines and doubled quotes).
    public static func parse(_ data: Data, path: String, format: TaskSpec.Format, firstLine: Int = 1, quotedTSV: Bool = false) throws -> [RawRow] {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }  // a UTF-8 byte-order mark (Excel's CSV export)
        switch format {
        case .csv: return try delimited(bytes, path: path, separator: UInt8(ascii: ","), quoting: true)
        case .tsv: return try delimited(bytes, path: path, separator: UInt8(ascii: "\t"), quoting: quotedTSV)
        case .jsonl: return try jsonLines(bytes, path: path)
        case .labelText: return try labelText(bytes, path: path, firstLine: firstLine)
        case .bigbench: return try bigbench(Data(bytes), path: path)
        }
    }

    static func decode(_ bytes: ArraySlice<UInt8>) -> String? { String(bytes: bytes, encoding: .utf8) }

    /// Lines with their 1-based numbers (a trailing "\r" is dropped).
    static func lines(_ bytes: [UInt8]) -> [(Int, ArraySlice<UInt8>)] {
        var out: [(Int, ArraySlice<UInt8>)] = []
        var start = 0
        var n = 1
        for i in 0...bytes.count where i == bytes.count || bytes[i] == UInt8(ascii: "\n") {
            var end = i
            if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            if !(i == bytes.count && start == i) { out.append((n, bytes[start..<end])) }
            start = i + 1; n += 1
        }
        return out
    }

    /// CSV (RFC 4180: quoted fields may hold separators, newlines and doubled quotes) or TSV.
    ///
    /// A quoted field must close with a quote followed by a separator, a line end or the end of
    /// the file. One that does not (a stray quote inside it, or no closing quote at all) makes
    /// its record bad, and reading resumes on the line after the one where the quote opened,
    /// so a stray quote never swallows the rows after it.
    static func delimited(_ bytes: [UInt8], path: String, separator: UInt8, quoting: Bool) throws -> [RawRow] {
        var records: [(line: Int, fields: [ArraySlice<UInt8>], error: String?)] = []
        var fields: [ArraySlice<UInt8>] = []
        var field: [UInt8] = []
        var inQuotes = false
        var line = 1
        var recordLine = 1
        var i = 0
        var quoteStart = 0
        var quoteLine = 1
        var storage: [[UInt8]] = []  // owns unescaped quoted fields
        func endField() { storage.append(field); fields.append(storage[storage.count - 1][...]); field = [] }
        /// Marks the record bad and restarts on the line after the opening quote's.
        func resync(_ message: String) {
            records.append((recordLine, [], message))
            var j = quoteStart
            while j < bytes.count && bytes[j] != UInt8(ascii: "\n") { j += 1 }
            i = j + 1
            field = []; fields = []; inQuotes = false
            line = quoteLine + 1; recordLine = line
        }
        while i < bytes.count {
            let b = bytes[i]
            if inQuotes {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") {
                        field.append(b); i += 1
                    } else {
                        let after = i + 1 < bytes.count ? bytes[i + 1] : UInt8(ascii: "\n")
                        guard after == separator || after == UInt8(ascii: "\n") || after == UInt8(ascii: "\r") else {
                            resync(
                                "the quoted field opened on line \(quoteLine) closes with a quote followed by other text (a quote inside a field must be doubled: \"\")"
                            )
                            continue
                        }
                        inQuotes = false
                    }
                } else {
                    if b == UInt8(ascii: "\n") { line += 1 }
                    field.append(b)
                }
            } else if quoting && b == UInt8(ascii: "\"") && field.isEmpty {
                inQuotes = true; quoteStart = i; quoteLine = line
            } else if b == separator {
                endField()
            } else if b == UInt8(ascii: "\n") {
                if field.last == UInt8(ascii: "\r") { field.removeLast() }
                endField()
                if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields, nil)) }
                fields = []; line += 1; recordLine = line
            } else {
                field.append(b)
            }
            i += 1
            if i == bytes.count && inQuotes { resync("the quoted field opened on line \(quoteLine) is never closed") }
        }
        if !field.isEmpty || !fields.isEmpty {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields, nil)) }
        }
        return try rows(records, path: path)
    }

    /// The records of a delimited file as rows keyed by the header's names; a record with the
    /// wrong number of fields or invalid UTF-8 is a bad row naming its line.
    static func rows(_ records: [(line: Int, fields: [ArraySlice<UInt8>], error: String?)], path: String) throws -> [RawRow] {
        guard let header = records.first else { throw SourceError(file: path, "empty file: a header row is needed") }
        let names = header.fields.map { decode($0) ?? "" }
        var rows: [RawRow] = []
        if let e = header.error { throw SourceError(file: path, line: header.line, "header row: \(e)") }
        for (k, rec) in records.dropFirst().enumerated() {
            if let e = rec.error { rows.append(.bad(SourceError(file: path, line: rec.line, e), index: k)); continue }
            if rec.fields.count != names.count {
                rows.append(.bad(SourceError(file: path, line: rec.line, "\(rec.fields.count) fields where the header has \(names.count)"), index: k))
                continue
            }
            var dict: [String: String] = [:]
            var ok = true
            for (name, f) in zip(names, rec.fields) {
                guard let s = decode(f) else {
                    rows.append(.bad(SourceError(file: path, line: rec.line, "invalid UTF-8 in field '\(name)'"), index: k)); ok = false; break
                }
                dict[name] = s
            }
            if ok { rows.append(RawRow(file: path, line: rec.line, index: k, fields: dict, error: nil)) }
        }
        return rows
    }

    static func jsonLines(_ bytes: [UInt8], path: String) throws -> [RawRow] {
        var rows: [RawRow] = []
        for (n, line) in lines(bytes) where !line.allSatisfy({ $0 == 32 || $0 == 9 }) {
            guard decode(line) != nil else { rows.append(.bad(SourceError(file: path, line: n, "invalid UTF-8"), index: rows.count)); continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                rows.append(.bad(SourceError(file: path, line: n, "not a JSON object"), index: rows.count)); continue
            }
            var dict: [String: String] = [:]
            for (k, v) in obj {
                if let s = v as? String {
                    dict[k] = s
                } else if let num = v as? NSNumber {
                    // JSON true/false arrive as NSNumber of type "c": read them as the words.
                    dict[k] = String(cString: num.objCType) == "c" ? (num.boolValue ? "true" : "false") : num.stringValue
                }
            }
            rows.append(RawRow(file: path, line: n, index: rows.count, fields: dict, error: nil))
        }
        return rows
    }

    /// `LABEL text…`: fields "label" and "text".
    static func labelText(_ bytes: [UInt8], path: String, firstLine: Int) throws -> [RawRow] {
        var rows: [RawRow] = []
        for (n, line) in lines(bytes) where n >= firstLine && !line.isEmpty {
            guard let s = decode(line) else { rows.append(.bad(SourceError(file: path, line: n, "invalid UTF-8"), index: rows.count)); continue }
            guard let space = s.firstIndex(where: { $0 == " " || $0 == "\t" }) else {
                rows.append(.bad(SourceError(file: path, line: n, column: s.count + 1, "a label but no text", sourceLine: s), index: rows.count));
                continue
            }
            rows.append(
                RawRow(
                    file: path, line: n, index: rows.count,
                    fields: ["label": String(s[..<space]), "text": String(s[space...].dropFirst())], error: nil))
        }
        return rows
    }

    /// BIG-bench task.json: fields "input" and "label" (the highest-scoring target, or `target`).
    static func bigbench(_ data: Data, path: String) throws -> [RawRow] {
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let examples = obj["examples"] as? [[String: Any]]
        else {
            throw SourceError(file: path, "not a BIG-bench task.json (no 'examples' list)")
        }
        var rows: [RawRow] = []
        for (k, ex) in examples.enumerated() {
            guard let input = ex["input"] as? String else {
                rows.append(.bad(SourceError(file: path, "example #\(k): no 'input' string"), index: k)); continue
            }
            var label: String?
            if let scores = ex["target_scores"] as? [String: Any] {
                let numeric = scores.compactMap { k, v in (v as? NSNumber).map { (k, $0.doubleValue) } }
                label = numeric.max { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 > $1.0) }?.0
            } else if let t = ex["target"] as? String {
                label = t
            } else if let t = (ex["target"] as? [String])?.first {
                label = t
            }
            guard let label else { rows.append(.bad(SourceError(file: path, "example #\(k): no target_scores or target"), index: k)); continue }
            rows.append(RawRow(file: path, line: 0, index: k, fields: ["input": input, "label": label], error: nil))
        }
        return rows
    }
}
