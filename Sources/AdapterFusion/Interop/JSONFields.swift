import Foundation

/// A JSON object read from a file afusion imports (AdapterHub and PEFT configs), with typed
/// field access: a field of the wrong type is an error naming the file, the field and the value
/// found, never a silent default. JSON true/false are booleans only (not the numbers 1 and 0).
struct JSONFields {
    let file: String
    /// Dotted path of this object inside the file ("config."), for messages.
    let prefix: String
    let object: [String: Any]

    /// Nesting deeper than this is refused before parsing.
    static let maxDepth = 64

    /// Reads `path` as one JSON object. Invalid UTF-8, too deep nesting, malformed JSON (with the
    /// parser's reason) and a top level that is not an object each get their own message.
    static func read(_ path: String, what: String) throws -> JSONFields {
        let data = try TextFile.data(path, what: what)
        return try parse(data, file: path)
    }

    static func parse(_ data: Data, file: String) throws -> JSONFields {
        let bytes = [UInt8](data)
        guard String(validating: bytes, as: UTF8.self) != nil else { throw SourceError(file: file, "not UTF-8 text, so not JSON") }
        var depth = 0
        var inString = false
        var escaped = false
        for b in bytes {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
            } else if b == UInt8(ascii: "\"") {
                inString = true
            } else if b == UInt8(ascii: "[") || b == UInt8(ascii: "{") {
                depth += 1
                guard depth <= maxDepth else { throw SourceError(file: file, "not a config: JSON nested more than \(maxDepth) levels deep") }
            } else if b == UInt8(ascii: "]") || b == UInt8(ascii: "}") {
                depth -= 1
            }
        }
        let value: Any
        do { value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw SourceError(file: file, "not valid JSON" + (reason.map { ": \($0)" } ?? ""))
        }
        guard let object = value as? [String: Any] else {
            throw SourceError(file: file, "not a JSON object: the file holds \(describe(value)) where an object {…} is expected")
        }
        return JSONFields(file: file, prefix: "", object: object)
    }

    /// A short description of a JSON value for messages: its type and, for scalars, the value.
    static func describe(_ v: Any) -> String {
        if v is NSNull { return "null" }
        if let s = v as? String { return "the string \"\(Snippet.cut(s))\"" }
        if let n = v as? NSNumber { return isBool(n) ? (n.boolValue ? "true" : "false") : "the number \(n)" }
        if v is [Any] { return "a list" }
        if v is [String: Any] { return "an object" }
        return "\(type(of: v))"
    }

    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    subscript(key: String) -> Any? { object[key] }
    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    func refuse(_ key: String, _ why: String) -> SourceError { SourceError(file: file, "cannot import: \(prefix)\(key) \(why)") }
    private func wrongType(_ key: String, _ expected: String) -> SourceError {
        refuse(key, "must be \(expected), not \(Self.describe(object[key]!))")
    }

    /// The field as an object (nil when absent or null).
    func object(_ key: String) throws -> JSONFields? {
        guard has(key) else { return nil }
        guard let o = object[key] as? [String: Any] else { throw wrongType(key, "an object") }
        return JSONFields(file: file, prefix: prefix + key + ".", object: o)
    }

    func bool(_ key: String) throws -> Bool? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, Self.isBool(n) else { throw wrongType(key, "true or false") }
        return n.boolValue
    }

    func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let s = object[key] as? String else { throw wrongType(key, "a string") }
        return s
    }

    /// A finite number (not a boolean).
    func number(_ key: String) throws -> Double? {
        guard has(key) else { return nil }
        guard let n = object[key] as? NSNumber, !Self.isBool(n), n.doubleValue.isFinite else { throw wrongType(key, "a finite number") }
        return n.doubleValue
    }

    /// A whole number in `range`.
    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let d = try number(key) else { return nil }
        guard d == d.rounded(), d >= Double(range.lowerBound), d <= Double(range.upperBound) else {
            throw refuse(key, "must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(Self.describe(object[key]!))")
        }
        return Int(d)
    }

    /// A list of whole numbers, each in `range`.
    func ints(_ key: String, in range: Range<Int>) throws -> [Int]? {
        guard has(key) else { return nil }
        guard let list = object[key] as? [Any] else { throw wrongType(key, "a list of whole numbers") }
        return try list.map { v in
            guard let n = v as? NSNumber, !Self.isBool(n), let i = Int(exactly: n.doubleValue), range.contains(i) else {
                throw refuse(key, "must list whole numbers in \(range.lowerBound)..<\(range.upperBound), not \(Self.describe(v))")
            }
            return i
        }
    }
}
