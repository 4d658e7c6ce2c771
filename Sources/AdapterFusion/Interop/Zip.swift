import Foundation

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
