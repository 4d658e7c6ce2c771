import Foundation

// The pickle subset a PyTorch state dict uses: read by `Unpickler` (nothing in the file is ever
// called), written by `PickleWriter`. Used by `TorchCheckpoint`.

/// A pickled value, as far as a state dict needs.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple([PickleValue])
    case list([PickleValue])
    case dict([(PickleValue, PickleValue)])
    case global(String)
    case persistentID([PickleValue])
    case mark
    case storage(key: String)
    case tensor(storage: String, offset: Int, shape: [Int], stride: [Int])
    case orderedDict

    var kind: String {
        switch self {
        case .none: "None"
        case .bool: "a boolean"
        case .int: "an integer"
        case .float: "a float"
        case .string: "a string"
        case .tuple: "a tuple"
        case .list: "a list"
        case .dict, .orderedDict: "a dict"
        case .global(let g): "'\(g)'"
        case .persistentID: "a persistent id"
        case .mark: "a mark"
        case .storage: "a storage"
        case .tensor: "a tensor"
        }
    }

    var int: Int? { if case .int(let i) = self { i } else { nil } }

    var isContainer: Bool {
        switch self {
        case .tuple, .list, .dict, .persistentID: true
        default: false
        }
    }
}

/// The subset of the pickle machine a Float32 state dict needs.
struct Unpickler {
    let bytes: [UInt8]
    let file: String
    var pos = 0
    var stack: [PickleValue] = []
    var memo: [Int: PickleValue] = [:]

    init(bytes: [UInt8], file: String) { self.bytes = bytes; self.file = file }

    func fail(_ why: String) -> SourceError { SourceError(file: file, "data.pkl at byte \(pos): \(why)") }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, pos + n <= bytes.count else { throw fail("truncated") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    mutating func le(_ n: Int) throws -> Int { try take(n).reversed().reduce(0) { $0 << 8 | Int($1) } }

    mutating func line() throws -> String {
        guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("truncated") }
        defer { pos = end + 1 }
        return String(decoding: bytes[pos..<end], as: UTF8.self)
    }

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }

    mutating func popToMark() throws -> [PickleValue] {
        guard let m = stack.lastIndex(where: { if case .mark = $0 { true } else { false } }) else { throw fail("no mark") }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }

    mutating func string(_ n: Int) throws -> PickleValue {
        guard let s = String(bytes: try take(n), encoding: .utf8) else { throw fail("a string is not UTF-8") }
        return .string(s)
    }

    mutating func load() throws -> PickleValue {
        while true {
            let op = try take(1).first!
            switch op {
            case 0x80: _ = try take(1)  // PROTO
            case 0x95: _ = try take(8)  // FRAME
            case 0x2E: return try pop()  // STOP
            case 0x28: stack.append(.mark)
            case 0x7D: stack.append(.dict([]))  // EMPTY_DICT
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x5D: stack.append(.list([]))  // EMPTY_LIST
            case 0x4E: stack.append(.none)
            case 0x88, 0x89: stack.append(.bool(op == 0x88))
            case 0x4B: stack.append(.int(try le(1)))  // BININT1
            case 0x4D: stack.append(.int(try le(2)))  // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try le(4)))))  // BININT
            case 0x8A:  // LONG1
                let n = try le(1)
                guard n <= 8 else { throw fail("an integer of \(n) bytes") }
                let v = n == 0 ? 0 : try le(n)
                stack.append(.int(n < 8 && v >> (8 * n - 1) & 1 == 1 ? v - (1 << (8 * n)) : v))
            case 0x47: stack.append(.float(Double(bitPattern: try take(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))  // BINFLOAT
            case 0x58: stack.append(try string(try le(4)))  // BINUNICODE
            case 0x8C: stack.append(try string(try le(1)))  // SHORT_BINUNICODE
            case 0x8D: stack.append(try string(try le(8)))  // BINUNICODE8
            case 0x71: memo[try le(1)] = stack.last  // BINPUT
            case 0x72: memo[try le(4)] = stack.last  // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let k = try le(op == 0x68 ? 1 : 4)
                guard let v = memo[k] else { throw fail("memo \(k) is empty") }
                stack.append(v)
            case 0x74: stack.append(.tuple(try shallow(popToMark())))  // TUPLE
            case 0x85, 0x86, 0x87:  // TUPLE1-3
                let n = Int(op - 0x84)
                guard stack.count >= n else { throw fail("stack underflow") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                stack.append(.tuple(try shallow(items)))
            case 0x63:  // GLOBAL
                let module = try line()
                stack.append(.global(module + "." + (try line())))
            case 0x93:  // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else { throw fail("bad STACK_GLOBAL") }
                stack.append(.global(module + "." + name))
            case 0x51: stack.append(try persistentStorage())  // BINPERSID
            case 0x52:  // REDUCE
                let args = try pop()
                let callable = try pop()
                stack.append(try reduce(callable, args))
            case 0x62: _ = try pop()  // BUILD: state of an OrderedDict (its _metadata) is not needed
            case 0x73, 0x75:  // SETITEM, SETITEMS
                let items = op == 0x73 ? [try pop(), try pop()].reversed() : try popToMark()
                guard items.count % 2 == 0 else { throw fail("odd SETITEMS") }
                let target = try pop()
                var pairs: [(PickleValue, PickleValue)]
                switch target {
                case .dict(let d): pairs = d
                case .orderedDict: pairs = []
                default: throw fail("SETITEMS on \(target.kind)")
                }
                for i in stride(from: 0, to: items.count, by: 2) { pairs.append((items[i], items[i + 1])) }
                guard pairs.count <= 1_000_000, !items.contains(where: \.isContainer) else {
                    throw fail("a dict entry holds a container, not a tensor (not a state dict)")
                }
                stack.append(.dict(pairs))
            case 0x61, 0x65:  // APPEND, APPENDS
                let items = op == 0x61 ? [try pop()] : try popToMark()
                guard case .list(let l) = try pop() else { throw fail("APPEND to a non-list") }
                stack.append(.list(l + (try shallow(items))))
            default:
                throw fail(String(format: "pickle opcode 0x%02x is not supported (only state dicts of tensors are)", op))
            }
        }
    }

    /// A BINPERSID's storage: ("storage", torch.FloatStorage, key, location, size).
    mutating func persistentStorage() throws -> PickleValue {
        guard case .tuple(let t) = try pop() else { throw fail("a persistent id is not a tuple") }
        guard t.count == 5, case .string("storage") = t[0], case .global(let type) = t[1], case .string(let key) = t[2] else {
            throw fail("an unknown persistent id")
        }
        guard type == "torch.FloatStorage" else { throw fail("storage type \(type): only Float32 (torch.FloatStorage) is supported") }
        return .storage(key: key)
    }

    /// `items`, checked to nest no deeper than a state dict's tuples do (a tuple of tuples of
    /// scalars): deeper nesting is refused rather than built (and later freed) recursively.
    func shallow(_ items: [PickleValue]) throws -> [PickleValue] {
        for item in items {
            if case .tuple(let inner) = item, inner.contains(where: \.isContainer) { throw fail("values nest deeper than a state dict's") }
            if case .list(let inner) = item, inner.contains(where: \.isContainer) { throw fail("values nest deeper than a state dict's") }
            if case .dict = item { throw fail("a dict inside a tuple or list is not part of a state dict") }
        }
        return items
    }

    func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let g) = callable, case .tuple(let a) = args else { throw fail("REDUCE of \(callable.kind)") }
        switch g {
        case "collections.OrderedDict": return .orderedDict
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case .storage(let key) = a[0], let offset = a[1].int, case .tuple(let size) = a[2], case .tuple(let stride) = a[3]
            else { throw fail("unexpected arguments of _rebuild_tensor_v2") }
            let shape = size.compactMap(\.int)
            let strides = stride.compactMap(\.int)
            guard shape.count == size.count, strides.count == stride.count, shape.allSatisfy({ $0 >= 0 }) else { throw fail("bad tensor size") }
            return .tensor(storage: key, offset: offset, shape: shape, stride: strides)
        default: throw fail("'\(g)' is not allowed in a state dict")
        }
    }
}

/// Pickle protocol 2 output, the opcodes `TorchCheckpoint.write` uses.
struct PickleWriter {
    var bytes: [UInt8] = []
    mutating func op(_ o: UInt8) { bytes.append(o) }
    mutating func byte(_ b: UInt8) { bytes.append(b) }
    mutating func le32(_ v: Int) { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
    mutating func string(_ s: String) { op(0x58); le32(s.utf8.count); bytes += Array(s.utf8) }
    mutating func int(_ v: Int) { op(0x4A); le32(v) }  // BININT (tensor sizes here are < 2³¹)
    mutating func global(_ module: String, _ name: String) { op(0x63); bytes += Array("\(module)\n\(name)\n".utf8) }
    mutating func tuple(_ v: [Int]) { op(0x28); for x in v { int(x) }; op(0x74) }
}
