/// A TOML value, as task files use them.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int? { if case .int(let i) = self { return i }; return nil }
    public var double: Double? { if case .double(let d) = self { return d }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [TOMLValue]? { if case .array(let a) = self { return a }; return nil }
    public var table: TOMLTable? { if case .table(let t) = self { return t }; return nil }
}

/// A TOML table: keys in file order.
public struct TOMLTable: Equatable, Sendable {
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]

    public init() {}
    public subscript(key: String) -> TOMLValue? { values[key] }

    mutating func set(_ key: String, _ value: TOMLValue) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
    }

    /// The sub-table at `key` (a new one if absent), moved out so that changing it copies
    /// nothing; `set` puts it back. Nil when `key` holds a value that is not a table.
    mutating func takeTable(_ key: String) -> TOMLTable? {
        switch values[key] {
        case nil: return TOMLTable()
        case .table(let t)?:
            values[key] = .table(TOMLTable())  // drop this table's reference: `t` is now the only one
            return t
        default: return nil
        }
    }
}
