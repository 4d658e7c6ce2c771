import Foundation

/// Errors from reading a safetensors checkpoint. Each names the file.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case truncated(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case wrongShape(path: String, name: String, expected: [Int], found: [Int])
    case unsupportedDType(path: String, name: String, dtype: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read safetensors file: \(r)"
        case let .truncated(p, r): return "\(p): truncated safetensors file: \(r)"
        case let .corrupt(p, r): return "\(p): corrupt safetensors header: \(r)"
        case let .missingTensor(p, n): return "\(p): tensor '\(n)' is not in the checkpoint"
        case let .wrongShape(p, n, e, f): return "\(p): tensor '\(n)' has shape \(f), expected \(e)"
        case let .unsupportedDType(p, n, d):
            return "\(p): tensor '\(n)' has dtype \(d); supported are F32, F16 and BF16"
        }
    }
}

/// A memory-mapped safetensors file: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the raw tensor bytes.
public final class SafeTensorsFile {
    /// One tensor's header entry; `byteRange` is relative to the start of the data area.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        public let byteRange: Range<Int>
    }

    public let path: String
    public let entries: [String: Entry]
    /// The optional `__metadata__` map.
    public let metadata: [String: String]
    private let base: UnsafeMutableRawPointer
    private let mappedSize: Int
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SafeTensorsError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafeTensorsError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw SafeTensorsError.truncated(path: path, reason: "\(size) bytes, shorter than the 8-byte header length")
        }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw SafeTensorsError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = m
        mappedSize = size
        do {
            // Unsigned and bounded by the file before it becomes an Int (0xFFFF… must not trap).
            let claimed = UInt64(littleEndian: m.loadUnaligned(as: UInt64.self))
            guard claimed <= UInt64(size - 8) else {
                throw SafeTensorsError.truncated(path: path, reason: "header claims \(claimed) bytes but the file has \(size - 8) after the length")
            }
            let headerLen = Int(claimed)
            dataStart = 8 + headerLen
            let headerData = Data(bytes: m + 8, count: headerLen)
            guard let json = try? JSONSerialization.jsonObject(with: headerData), let dict = json as? [String: Any] else {
                throw SafeTensorsError.corrupt(path: path, reason: "header is not a JSON object")
            }
            var entries: [String: Entry] = [:]
            var metadata: [String: String] = [:]
            let dataSize = size - dataStart
            for (name, value) in dict {
                if name == "__metadata__" {
                    for (k, v) in value as? [String: Any] ?? [:] { metadata[k] = "\(v)" }
                    continue
                }
                guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                    let shape = (info["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                    let offs = (info["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                    offs.count == 2, shape.allSatisfy({ $0 >= 0 })
                else { throw SafeTensorsError.corrupt(path: path, reason: "entry '\(name)' lacks dtype, shape or data_offsets") }
                guard offs[0] >= 0, offs[0] <= offs[1] else {
                    throw SafeTensorsError.corrupt(path: path, reason: "entry '\(name)' has data_offsets \(offs)")
                }
                guard offs[1] <= dataSize else {
                    throw SafeTensorsError.truncated(path: path, reason: "tensor '\(name)' ends at byte \(offs[1]) of a \(dataSize)-byte data area")
                }
                guard (info["shape"] as? [Any])?.count == shape.count else {
                    throw SafeTensorsError.corrupt(path: path, reason: "entry '\(name)' has a shape that is not a list of integers")
                }
                // The element count, without overflow: it must fit the data area anyway.
                var elements = 1
                for d in shape {
                    let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                    guard !overflow, p <= dataSize else {
                        throw SafeTensorsError.corrupt(path: path, reason: "tensor '\(name)' has shape \(shape), larger than the file")
                    }
                    elements = p
                }
                if let width = Self.byteWidth(dtype), elements * width != offs[1] - offs[0] {
                    throw SafeTensorsError.corrupt(
                        path: path, reason: "tensor '\(name)' of shape \(shape) \(dtype) needs \(elements * width) bytes, has \(offs[1] - offs[0])")
                }
                entries[name] = Entry(name: name, dtype: dtype, shape: shape, byteRange: offs[0]..<offs[1])
            }
            self.entries = entries
            self.metadata = metadata
        } catch {
            munmap(m, size)
            throw error
        }
    }

    deinit { munmap(base, mappedSize) }

    private static func byteWidth(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32", "U32": return 4
        case "F16", "BF16", "I16", "U16": return 2
        case "F64", "I64", "U64": return 8
        case "I8", "U8", "BOOL": return 1
        default: return nil
        }
    }

    /// Reads tensor `name` as Float32 (converting F16/BF16), checking its shape when `shape` is given.
    public func tensor(_ name: String, shape expected: [Int]? = nil) throws -> Tensor {
        guard let e = entries[name] else { throw SafeTensorsError.missingTensor(path: path, name: name) }
        if let expected, expected != e.shape {
            throw SafeTensorsError.wrongShape(path: path, name: name, expected: expected, found: e.shape)
        }
        let t = Tensor(zeros: e.shape)
        let src = UnsafeRawPointer(base + dataStart + e.byteRange.lowerBound)
        switch e.dtype {
        case "F32":
            memcpy(t.data, src, t.count * 4)
        case "F16":
            for i in 0..<t.count {
                t.data[i] = Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
            }
        case "BF16":
            for i in 0..<t.count {
                let bits = UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16
                t.data[i] = Float(bitPattern: bits)
            }
        default:
            throw SafeTensorsError.unsupportedDType(path: path, name: name, dtype: e.dtype)
        }
        // The copy is taken: let the OS drop the file pages it read, so loading a model never
        // holds it twice (the whole pages inside the tensor's bytes; the mapping stays valid).
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let begin = (Int(bitPattern: src) + page - 1) / page * page
        let end = (Int(bitPattern: src) + e.byteRange.count) / page * page
        if end > begin { madvise(UnsafeMutableRawPointer(bitPattern: begin), end - begin, MADV_DONTNEED) }
        return t
    }

    /// Writes Float32 tensors as a safetensors file (used by tests and tools that export weights).
    public static func write(_ tensors: [(String, Tensor)], to path: String, dtype: String = "F32") throws {
        precondition(["F32", "F16", "BF16"].contains(dtype))
        var header: [String: Any] = [:]
        var body = Data()
        for (name, t) in tensors {
            let begin = body.count
            for i in 0..<t.count {
                switch dtype {
                case "F16": withUnsafeBytes(of: Float16(t.data[i]).bitPattern.littleEndian) { body.append(contentsOf: $0) }
                case "BF16": withUnsafeBytes(of: UInt16(t.data[i].bitPattern >> 16).littleEndian) { body.append(contentsOf: $0) }
                default: withUnsafeBytes(of: t.data[i].bitPattern.littleEndian) { body.append(contentsOf: $0) }
                }
            }
            header[name] = ["dtype": dtype, "shape": t.shape, "data_offsets": [begin, body.count]]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        try out.write(to: URL(fileURLWithPath: path))
    }
}
