import CHDF5
import Foundation

/// An HDF5 call failed; the message names the file and object.
public struct HDF5Error: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

extension HDF5Error {
    /// ": <the OS's reason>" when the failed call left one in errno (no space left, …), else "".
    static func osReason() -> String { errno == 0 ? "" : ": " + String(cString: strerror(errno)) }
}

/// Owns one HDF5 identifier and closes it when released (or earlier, by `close()`).
final class H5Handle {
    let id: hid_t
    private let closer: (hid_t) -> herr_t
    private var open = true
    init(_ id: hid_t, _ closer: @escaping (hid_t) -> herr_t) { self.id = id; self.closer = closer }
    /// Closes the identifier; true when HDF5 reported success.
    func close() -> Bool {
        guard open else { return true }
        open = false
        return closer(id) >= 0
    }
    deinit { _ = close() }
}

/// An open HDF5 file. Objects opened from it keep it alive; it closes when the last is released.
public final class HDF5File {
    public let path: String
    let handle: H5Handle

    /// Creates a file (replacing an existing one only when `overwrite`).
    public init(creating path: String, overwrite: Bool = false) throws {
        afh5_silence_errors()
        let id = H5Fcreate(path, overwrite ? afh5_F_ACC_TRUNC() : afh5_F_ACC_EXCL(), afh5_P_DEFAULT(), afh5_P_DEFAULT())
        guard id >= 0 else { throw HDF5Error("\(path): cannot create HDF5 file\(overwrite ? "" : " (does it exist already?)")") }
        self.path = path
        handle = H5Handle(id, H5Fclose)
    }

    /// Creates a file that lives in memory only (HDF5's core driver without a backing store):
    /// HDF5 never writes to disk, so a full disk or an I/O error can only surface where the
    /// caller writes `image()` out, with the OS's reason, and never inside the library.
    public init(inMemory name: String) throws {
        afh5_silence_errors()
        let fapl = H5Pcreate(afh5_P_FILE_ACCESS())
        defer { H5Pclose(fapl) }
        guard fapl >= 0, H5Pset_fapl_core(fapl, 1 << 20, false) >= 0 else { throw HDF5Error("\(name): cannot set up an in-memory HDF5 file") }
        let id = H5Fcreate(name, afh5_F_ACC_TRUNC(), afh5_P_DEFAULT(), fapl)
        guard id >= 0 else { throw HDF5Error("\(name): cannot create an in-memory HDF5 file") }
        path = name
        handle = H5Handle(id, H5Fclose)
    }

    /// The bytes of the whole file (after a flush), as it would be on disk.
    public func image() throws -> [UInt8] {
        try flush()
        let size = H5Fget_file_image(handle.id, nil, 0)
        guard size > 0 else { throw HDF5Error("\(path): cannot take the file's image") }
        var bytes = [UInt8](repeating: 0, count: size)
        guard H5Fget_file_image(handle.id, &bytes, size) == size else { throw HDF5Error("\(path): cannot take the file's image") }
        return bytes
    }

    /// Opens an existing file.
    public init(opening path: String, writable: Bool = false) throws {
        afh5_silence_errors()
        var st = stat()
        guard stat(path, &st) == 0 else { throw HDF5Error("\(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) != S_IFDIR else { throw HDF5Error("\(path): \(String(cString: strerror(EISDIR))); a store is an HDF5 file") }
        guard access(path, writable ? R_OK | W_OK : R_OK) == 0 else { throw HDF5Error("\(path): \(String(cString: strerror(errno)))") }
        guard H5Fis_hdf5(path) > 0 else { throw HDF5Error("\(path): not an HDF5 file (or it is corrupt)") }
        let id = H5Fopen(path, writable ? afh5_F_ACC_RDWR() : afh5_F_ACC_RDONLY(), afh5_P_DEFAULT())
        guard id >= 0 else { throw HDF5Error("\(path): cannot open HDF5 file") }
        self.path = path
        handle = H5Handle(id, H5Fclose)
    }

    /// The root group `/`.
    public var root: HDF5Group {
        get throws { try HDF5Group(open: "/", in: self, parentID: handle.id, fullPath: "") }
    }

    /// Writes everything buffered to disk.
    public func flush() throws {
        errno = 0
        guard H5Fflush(handle.id, H5F_SCOPE_GLOBAL) >= 0 else { throw HDF5Error("\(path): cannot write the file\(HDF5Error.osReason())") }
    }

}
