import Foundation

/// A PyTorch state dict file (`torch.save(state_dict)`, the `.bin` files AdapterHub writes by
/// default): a zip archive, stored uncompressed, holding `<stem>/data.pkl` (a pickle of
/// {name: tensor}) and one `<stem>/data/<key>` per tensor storage.
///
/// Only what a state dict of Float32 tensors uses is read: the pickle opcodes of protocols 2–5
/// for dicts, tuples, strings, integers, booleans, None, memo and persistent ids, and the
/// globals `torch._utils._rebuild_tensor_v2`, `torch.FloatStorage` and
/// `collections.OrderedDict`. Anything else (other dtypes, compressed entries, arbitrary
/// objects) is refused with the reason; nothing in the file is ever executed.
public struct TorchCheckpoint: WeightsFile {
    public let path: String
    /// Tensors by name: shape and row-major Float32 values.
    public private(set) var tensors: [String: (shape: [Int], values: [Float])] = [:]

    /// Reads `path`.
    public init(path: String) throws {
        self.path = path
        let data = try TextFile.data(path, what: "cannot read PyTorch checkpoint")
        let entries = try Zip.entries(data, path: path)
        guard let pkl = entries.keys.first(where: { $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }) else {
            throw fail("no data.pkl inside (not a PyTorch zip checkpoint; torch.save's legacy format is not supported)")
        }
        let prefix = String(pkl.dropLast("data.pkl".count))
        var unpickler = Unpickler(bytes: [UInt8](entries[pkl]!), file: path)
        let root = try unpickler.load()
        guard case .dict(let items) = root else { throw fail("data.pkl holds \(root.kind), not a state dict") }
        for (k, v) in items {
            guard case .string(let name) = k else { throw fail("a state dict key is \(k.kind), not a string") }
            guard case .tensor(let storage, let offset, let shape, let stride) = v else {
                throw fail("'\(name)' is \(v.kind), not a tensor")
            }
            guard let bytes = entries[prefix + "data/" + storage] else { throw fail("'\(name)': storage data/\(storage) is missing") }
            guard shape.count == stride.count, shape.count <= 8, shape.allSatisfy({ (0...(1 << 31)).contains($0) }) else {
                throw fail("'\(name)' has size \(shape) and stride \(stride)")
            }
            var expected = 1
            for (d, s) in zip(shape, stride).reversed() {
                guard s == expected || d == 1 else { throw fail("'\(name)' is not contiguous (stride \(stride) for shape \(shape))") }
                let (product, overflow) = expected.multipliedReportingOverflow(by: d)
                guard !overflow, product <= bytes.count else { throw fail("'\(name)' of size \(shape) exceeds its storage") }
                expected = product
            }
            let count = expected
            guard (0...bytes.count).contains(offset), (offset + count) * 4 <= bytes.count else {
                throw fail("'\(name)': \(count) values at offset \(offset) exceed its storage of \(bytes.count / 4)")
            }
            let values = bytes.withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: (offset + $0) * 4, as: UInt32.self))) }
            }
            tensors[name] = (shape, values)
        }
    }

    func fail(_ why: String) -> SourceError { SourceError(file: path, why) }

    /// The tensor `name`, checked against `expected` (when given).
    public func tensor(_ name: String, shape expected: [Int]? = nil) throws -> Tensor {
        guard let t = tensors[name] else { throw fail("no tensor '\(name)'") }
        if let expected, expected != t.shape { throw fail("'\(name)' has shape \(t.shape), expected \(expected)") }
        let out = Tensor(zeros: t.shape)
        out.data.update(from: t.values, count: t.values.count)
        return out
    }

    /// Writes `tensors` as `torch.save` of a dict would (loadable with `torch.load(…,
    /// weights_only=True)`), under the archive folder `stem`.
    public static func write(_ tensors: [(String, Tensor)], to path: String) throws {
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        var p = PickleWriter()
        p.op(0x80); p.byte(2)  // PROTO 2
        p.op(0x7D)  // EMPTY_DICT
        p.op(0x28)  // MARK
        for (i, (name, t)) in tensors.enumerated() {
            p.string(name)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.op(0x28)  // MARK: the arguments
            p.op(0x28); p.string("storage"); p.global("torch", "FloatStorage"); p.string(String(i)); p.string("cpu"); p.int(t.count)
            p.op(0x74); p.op(0x51)  // TUPLE, BINPERSID
            p.int(0)  // storage offset
            p.tuple(t.shape)
            p.tuple(t.shape.indices.map { d in t.shape[(d + 1)...].reduce(1, *) })
            p.op(0x89)  // NEWFALSE: requires_grad
            p.global("collections", "OrderedDict"); p.op(0x29); p.op(0x52)  // OrderedDict() backward hooks
            p.op(0x74); p.op(0x52)  // TUPLE, REDUCE
        }
        p.op(0x75); p.op(0x2E)  // SETITEMS, STOP
        var files: [(String, [UInt8])] = [(stem + "/data.pkl", p.bytes), (stem + "/byteorder", Array("little".utf8))]
        for (i, (_, t)) in tensors.enumerated() {
            var bytes = [UInt8](repeating: 0, count: t.count * 4)
            bytes.withUnsafeMutableBytes { raw in
                for j in 0..<t.count { raw.storeBytes(of: t[j].bitPattern.littleEndian, toByteOffset: j * 4, as: UInt32.self) }
            }
            files.append((stem + "/data/\(i)", bytes))
        }
        files.append((stem + "/version", Array("3\n".utf8)))
        guard FileManager.default.createFile(atPath: path, contents: Data(Zip.archive(files))) else {
            throw SourceError(file: path, "cannot write: \(String(cString: strerror(errno)))")
        }
    }
}

/// A pickled value, as far as a state dict needs.
private indirect enum PickleValue {
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
private struct Unpickler {
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
            case 0x51:  // BINPERSID
                guard case .tuple(let t) = try pop() else { throw fail("a persistent id is not a tuple") }
                guard t.count == 5, case .string("storage") = t[0], case .global(let type) = t[1], case .string(let key) = t[2] else {
                    throw fail("an unknown persistent id")
                }
                guard type == "torch.FloatStorage" else { throw fail("storage type \(type): only Float32 (torch.FloatStorage) is supported") }
                stack.append(.storage(key: key))
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
private struct PickleWriter {
    var bytes: [UInt8] = []
    mutating func op(_ o: UInt8) { bytes.append(o) }
    mutating func byte(_ b: UInt8) { bytes.append(b) }
    mutating func le32(_ v: Int) { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
    mutating func string(_ s: String) { op(0x58); le32(s.utf8.count); bytes += Array(s.utf8) }
    mutating func int(_ v: Int) { op(0x4A); le32(v) }  // BININT (tensor sizes here are < 2³¹)
    mutating func global(_ module: String, _ name: String) { op(0x63); bytes += Array("\(module)\n\(name)\n".utf8) }
    mutating func tuple(_ v: [Int]) { op(0x28); for x in v { int(x) }; op(0x74) }
}

/// Just enough of the zip format for PyTorch checkpoints: stored (uncompressed) entries.
enum Zip {
    /// Entry contents by name, from the central directory.
    static func entries(_ data: Data, path: String) throws -> [String: Data] {
        let b = [UInt8](data)
        func u(_ at: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
        func fail(_ why: String) -> SourceError { SourceError(file: path, "not a readable PyTorch checkpoint: \(why)") }
        guard b.count >= 22,
            let eocd = stride(from: b.count - 22, through: max(0, b.count - 65_557), by: -1).first(where: { u($0, 4) == 0x0605_4B50 })
        else { throw fail("no zip end record") }
        var (count, at) = (u(eocd + 10, 2), u(eocd + 16, 4))
        // zip64 (torch.save writes its records): the real count and offset are in the zip64 end
        // record, which the locator just before the end record points at.
        if eocd >= 20, u(eocd - 20, 4) == 0x0706_4B50 {
            let z = u(eocd - 12, 8)
            guard z >= 0, z <= b.count - 56, u(z, 4) == 0x0606_4B50 else { throw fail("damaged zip64 end record") }
            (count, at) = (u(z + 32, 8), u(z + 48, 8))
        }
        guard count >= 0, count <= b.count / 46, at >= 0 else { throw fail("damaged zip directory") }
        var out: [String: Data] = [:]
        for _ in 0..<count {
            guard at <= b.count - 46, u(at, 4) == 0x0201_4B50 else { throw fail("damaged zip directory") }
            let method = u(at + 10, 2)
            let nameLength = u(at + 28, 2)
            guard at + 46 + nameLength + u(at + 30, 2) <= b.count else { throw fail("damaged zip directory") }
            let (size, local) = try zip64Sizes(b, entry: at, size: u(at + 20, 4), local: u(at + 42, 4), fail: fail)
            let name = String(decoding: b[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            guard method == 0 else { throw fail("entry '\(name)' is compressed (method \(method)); torch.save stores entries uncompressed") }
            guard local >= 0, local <= b.count - 30, u(local, 4) == 0x0403_4B50 else { throw fail("damaged local header of '\(name)'") }
            let start = local + 30 + u(local + 26, 2) + u(local + 28, 2)
            guard size >= 0, start <= b.count, size <= b.count - start else { throw fail("entry '\(name)' is truncated") }
            out[name] = Data(b[start..<(start + size)])
            at += 46 + nameLength + u(at + 30, 2) + u(at + 32, 2)
        }
        return out
    }

    /// An entry's size and local header offset: a field of 0xFFFFFFFF is in the zip64 extra
    /// field (id 1), which lists the 8-byte values present in the order uncompressed size,
    /// compressed size, local header offset.
    static func zip64Sizes(_ b: [UInt8], entry at: Int, size: Int, local: Int, fail: (String) -> SourceError) throws -> (Int, Int) {
        func u(_ at: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
        let wide = [u(at + 24, 4), u(at + 20, 4), local].map { $0 == 0xFFFF_FFFF }
        guard wide.contains(true) else { return (size, local) }
        var x = at + 46 + u(at + 28, 2)
        let end = x + u(at + 30, 2)
        while x + 4 <= end {
            let (id, length) = (u(x, 2), u(x + 2, 2))
            guard x + 4 + length <= end else { break }
            if id == 1 {
                var values = [u(at + 24, 4), u(at + 20, 4), local]
                var p = x + 4
                for k in 0..<3 where wide[k] {
                    guard p + 8 <= x + 4 + length else { throw fail("damaged zip64 extra field") }
                    values[k] = u(p, 8); p += 8
                }
                return (values[1], values[2])
            }
            x += 4 + length
        }
        throw fail("an entry's size is 0xFFFFFFFF without a zip64 extra field")
    }

    /// A zip archive of stored entries, each entry's data aligned to 64 bytes (as torch.save).
    static func archive(_ files: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func put(_ buf: inout [UInt8], _ v: Int, _ n: Int) { for k in 0..<n { buf.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
        for (name, data) in files {
            let offset = out.count
            let crc = Int(crc32(data))
            let nameBytes = Array(name.utf8)
            let headerEnd = offset + 30 + nameBytes.count + 4  // + an extra field header of 4 bytes
            let pad = (64 - headerEnd % 64) % 64
            put(&out, 0x0403_4B50, 4); put(&out, 20, 2); put(&out, 0, 2); put(&out, 0, 2); put(&out, 0, 2); put(&out, 0x21, 2)
            put(&out, crc, 4); put(&out, data.count, 4); put(&out, data.count, 4); put(&out, nameBytes.count, 2); put(&out, 4 + pad, 2)
            out += nameBytes
            put(&out, 0x4246, 2); put(&out, pad, 2); out += [UInt8](repeating: 0x5A, count: pad)  // "FB" padding, as torch
            out += data
            put(&central, 0x0201_4B50, 4); put(&central, 20, 2); put(&central, 20, 2); put(&central, 0, 2); put(&central, 0, 2)
            put(&central, 0, 2); put(&central, 0x21, 2); put(&central, crc, 4); put(&central, data.count, 4); put(&central, data.count, 4)
            put(&central, nameBytes.count, 2); put(&central, 0, 2); put(&central, 0, 2); put(&central, 0, 2); put(&central, 0, 2)
            put(&central, 0, 4); put(&central, offset, 4)
            central += nameBytes
        }
        let centralOffset = out.count
        out += central
        put(&out, 0x0605_4B50, 4); put(&out, 0, 2); put(&out, 0, 2); put(&out, files.count, 2); put(&out, files.count, 2)
        put(&out, central.count, 4); put(&out, centralOffset, 4); put(&out, 0, 2)
        return out
    }

    static let crcTable: [UInt32] = (0..<256).map { n in
        (0..<8).reduce(UInt32(n)) { c, _ in c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        ~data.reduce(~UInt32(0)) { crcTable[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
    }
}

/// A file of named tensors: safetensors or a PyTorch checkpoint.
public protocol WeightsFile {
    func tensor(_ name: String, shape expected: [Int]?) throws -> Tensor
}

extension SafeTensorsFile: WeightsFile {}

extension AdapterHubAdapter {
    /// The weights in `directory`: `<safetensors>` if present, else the PyTorch `<bin>` file.
    static func weights(_ directory: String, safetensors: String, bin: String) throws -> WeightsFile {
        let safe = (directory as NSString).appendingPathComponent(safetensors)
        let torch = (directory as NSString).appendingPathComponent(bin)
        if FileManager.default.fileExists(atPath: safe) || !FileManager.default.fileExists(atPath: torch) { return try SafeTensorsFile(path: safe) }
        return try TorchCheckpoint(path: torch)
    }

    /// Writes `tensors` as safetensors or as a PyTorch checkpoint.
    static func writeWeights(_ tensors: [(String, Tensor)], _ directory: String, safetensors: Bool, names: (safe: String, bin: String)) throws {
        let path = (directory as NSString).appendingPathComponent(safetensors ? names.safe : names.bin)
        if safetensors { try SafeTensorsFile.write(tensors, to: path) } else { try TorchCheckpoint.write(tensors, to: path) }
    }
}
