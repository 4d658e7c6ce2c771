import Foundation

/// Reads the user's files (recipes, task files, data, vocabularies) with errors that say why:
/// the OS's reason when a file cannot be read, and the line and column of the first byte that
/// is not UTF-8.
public enum TextFile {
    /// The bytes of `path`, or a `SourceError` with the OS's reason ("No such file or
    /// directory", "Permission denied", "Is a directory", …) after `what` ("cannot read recipe").
    public static func data(_ path: String, what: String, hint: String? = nil) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SourceError(file: path, "\(what): \(String(cString: strerror(errno)))", hint: hint) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            throw SourceError(file: path, "\(what): \(String(cString: strerror(EISDIR)))", hint: hint)
        }
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SourceError(file: path, "\(what): \(String(cString: strerror(errno)))", hint: hint)
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// The text of `path` as UTF-8 with LF line ends (CRLF read as LF, a leading byte-order
    /// mark dropped), or an error at the first invalid byte.
    public static func text(_ path: String, what: String, hint: String? = nil) throws -> String {
        try decode(try data(path, what: what, hint: hint), file: path).replacingOccurrences(of: "\r\n", with: "\n")
    }

    /// Decodes UTF-8, naming the line and column of the first invalid byte on failure.
    public static func decode(_ data: Data, file: String) throws -> String {
        let bytes = [UInt8](data)
        if let s = String(validating: bytes, as: UTF8.self) {
            return s.hasPrefix("\u{FEFF}") ? String(s.dropFirst()) : s
        }
        var line = 1
        var col = 1
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            let len = b < 0x80 ? 1 : b >> 5 == 0b110 ? 2 : b >> 4 == 0b1110 ? 3 : b >> 3 == 0b11110 ? 4 : 0
            let ok =
                len > 0 && i + len <= bytes.count && (1..<len).allSatisfy { bytes[i + $0] >> 6 == 0b10 }
                && String(validating: bytes[i..<(i + len)], as: UTF8.self) != nil
            guard ok else {
                throw SourceError(
                    file: file, line: line, column: col, String(format: "invalid UTF-8 (byte 0x%02X)", b),
                    hint: "save the file as UTF-8")
            }
            if b == UInt8(ascii: "\n") { line += 1; col = 1 } else { col += 1 }
            i += len
        }
        throw SourceError(file: file, "not valid UTF-8")
    }
}
