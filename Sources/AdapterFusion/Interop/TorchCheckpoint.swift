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
