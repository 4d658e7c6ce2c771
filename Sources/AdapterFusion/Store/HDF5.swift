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

    /// Closes the file now and reports a failure (a full disk shows here); objects still open
    /// from it keep it open until they are released.
    public func close() throws {
        errno = 0
        guard handle.close() else { throw HDF5Error("\(path): cannot finish writing the file\(HDF5Error.osReason())") }
    }
}

/// A group: holds datasets, subgroups and attributes.
public final class HDF5Group {
    public let file: HDF5File
    /// Absolute path of the group inside the file.
    public let path: String
    let handle: H5Handle

    init(open name: String, in file: HDF5File, parentID: hid_t, fullPath: String) throws {
        let id = H5Gopen2(parentID, name, afh5_P_DEFAULT())
        guard id >= 0 else { throw HDF5Error("\(file.path): no group '\(fullPath.isEmpty ? "/" : fullPath)'") }
        self.file = file
        self.path = fullPath.isEmpty ? "/" : fullPath
        handle = H5Handle(id, H5Gclose)
    }

    init(create name: String, in file: HDF5File, parentID: hid_t, fullPath: String) throws {
        let lcpl = H5Pcreate(afh5_P_LINK_CREATE())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let id = H5Gcreate2(parentID, name, lcpl, afh5_P_DEFAULT(), afh5_P_DEFAULT())
        guard id >= 0 else { throw HDF5Error("\(file.path): cannot create group '\(fullPath)' (does it exist already?)") }
        self.file = file
        self.path = fullPath
        handle = H5Handle(id, H5Gclose)
    }

    func child(_ name: String) -> String { path == "/" ? "/" + name : path + "/" + name }

    /// True when a link `name` (a relative path is allowed) exists below this group.
    public func contains(_ name: String) -> Bool {
        var prefix = ""
        for part in name.split(separator: "/") {
            prefix += (prefix.isEmpty ? "" : "/") + part
            if H5Lexists(handle.id, prefix, afh5_P_DEFAULT()) <= 0 { return false }
        }
        return !prefix.isEmpty
    }

    /// Opens subgroup `name` (a relative path is allowed).
    public func group(_ name: String) throws -> HDF5Group {
        guard contains(name) else { throw HDF5Error("\(file.path): no group '\(child(name))'") }
        return try HDF5Group(open: name, in: file, parentID: handle.id, fullPath: child(name))
    }

    /// Creates subgroup `name`, with any missing intermediate groups.
    public func createGroup(_ name: String) throws -> HDF5Group {
        try HDF5Group(create: name, in: file, parentID: handle.id, fullPath: child(name))
    }

    /// Names of the direct children (groups and datasets), sorted.
    public func children() -> [String] {
        var info = H5G_info_t()
        guard H5Gget_info(handle.id, &info) >= 0 else { return [] }
        return Self.names(count: info.nlinks) { i, buf, size in
            H5Lget_name_by_idx(handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, size, afh5_P_DEFAULT())
        }
    }

    /// Names by index through an HDF5 "get name by index" call: a first call for the length, a second for the text.
    private static func names(count: hsize_t, _ get: (hsize_t, UnsafeMutablePointer<CChar>?, Int) -> Int) -> [String] {
        (0..<count).compactMap { i -> String? in
            let n = get(i, nil, 0)
            guard n >= 0 else { return nil }
            var buf = [CChar](repeating: 0, count: n + 1)
            _ = get(i, &buf, buf.count)
            return String(cString: buf)
        }.sorted()
    }

    /// True when child `name` is a group (false for a dataset or nothing).
    public func isGroup(_ name: String) -> Bool {
        guard contains(name) else { return false }
        let obj = H5Oopen(handle.id, name, afh5_P_DEFAULT())
        guard obj >= 0 else { return false }
        defer { H5Oclose(obj) }
        return H5Iget_type(obj) == H5I_GROUP
    }

    /// Copies object `name` (a group with everything below it, or a dataset) into `destination`.
    public func copy(_ name: String, to destination: HDF5Group, as newName: String? = nil) throws {
        let lcpl = H5Pcreate(afh5_P_LINK_CREATE())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        guard H5Ocopy(handle.id, name, destination.handle.id, newName ?? name, afh5_P_DEFAULT(), lcpl) >= 0 else {
            throw HDF5Error("cannot copy '\(child(name))' of \(file.path) to \(destination.file.path)")
        }
    }

    /// Deletes link `name` (the space is reclaimed when the file is rewritten).
    public func remove(_ name: String) throws {
        guard H5Ldelete(handle.id, name, afh5_P_DEFAULT()) >= 0 else { throw HDF5Error("\(file.path): cannot delete '\(child(name))'") }
    }

    // MARK: Datasets

    private func writeDataset(_ name: String, type: hid_t, shape: [Int], _ bytes: UnsafeRawPointer) throws {
        var dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), &dims, nil)
        defer { H5Sclose(space) }
        let lcpl = H5Pcreate(afh5_P_LINK_CREATE())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let ds = H5Dcreate2(handle.id, name, type, space, lcpl, afh5_P_DEFAULT(), afh5_P_DEFAULT())
        guard ds >= 0 else { throw HDF5Error("\(file.path): cannot create dataset '\(child(name))' (does it exist already?)") }
        defer { H5Dclose(ds) }
        errno = 0
        guard H5Dwrite(ds, type, afh5_S_ALL(), afh5_S_ALL(), afh5_P_DEFAULT(), bytes) >= 0 else {
            throw HDF5Error("\(file.path): cannot write dataset '\(child(name))'\(HDF5Error.osReason())")
        }
    }

    /// Writes a Float32 dataset with the given shape.
    public func write(_ name: String, floats: UnsafePointer<Float>, shape: [Int]) throws {
        try writeDataset(name, type: afh5_T_NATIVE_FLOAT(), shape: shape, floats)
    }

    /// Writes a tensor as a Float32 dataset of the tensor's shape.
    public func write(_ name: String, tensor: Tensor) throws {
        try write(name, floats: tensor.data, shape: tensor.shape)
    }

    /// Writes an Int64 dataset.
    public func write(_ name: String, ints: [Int], shape: [Int]? = nil) throws {
        let values = ints.map(Int64.init)
        try values.withUnsafeBytes { try writeDataset(name, type: afh5_T_NATIVE_INT64(), shape: shape ?? [ints.count], $0.baseAddress!) }
    }

    private func openDataset(_ name: String) throws -> (H5Handle, [Int]) {
        guard contains(name) else { throw HDF5Error("\(file.path): no dataset '\(child(name))'") }
        let ds = H5Dopen2(handle.id, name, afh5_P_DEFAULT())
        guard ds >= 0 else { throw HDF5Error("\(file.path): '\(child(name))' is not a dataset") }
        let h = H5Handle(ds, H5Dclose)
        let space = H5Dget_space(ds)
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank >= 0 else { throw HDF5Error("\(file.path): dataset '\(child(name))' has no simple shape") }
        var dims = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(space, &dims, nil)
        return (h, dims.map(Int.init))
    }

    /// Shape of dataset `name`.
    public func shape(of name: String) throws -> [Int] { try openDataset(name).1 }

    /// Reads dataset `name` as a Float32 tensor (HDF5 converts other numeric types),
    /// checking its shape when `shape` is given.
    public func readTensor(_ name: String, shape expected: [Int]? = nil) throws -> Tensor {
        let (ds, shape) = try openDataset(name)
        if let expected, expected != shape {
            throw HDF5Error("\(file.path): dataset '\(child(name))' has shape \(shape), expected \(expected)")
        }
        let t = Tensor(zeros: shape)
        guard H5Dread(ds.id, afh5_T_NATIVE_FLOAT(), afh5_S_ALL(), afh5_S_ALL(), afh5_P_DEFAULT(), t.data) >= 0 else {
            throw HDF5Error("\(file.path): cannot read dataset '\(child(name))' as float")
        }
        return t
    }

    /// Reads dataset `name` as integers.
    public func readInts(_ name: String) throws -> [Int] {
        let (ds, shape) = try openDataset(name)
        var values = [Int64](repeating: 0, count: shape.reduce(1, *))
        guard H5Dread(ds.id, afh5_T_NATIVE_INT64(), afh5_S_ALL(), afh5_S_ALL(), afh5_P_DEFAULT(), &values) >= 0 else {
            throw HDF5Error("\(file.path): cannot read dataset '\(child(name))' as integers")
        }
        return values.map(Int.init)
    }

    // MARK: Attributes

    private func replaceAttribute(_ name: String, type: hid_t, space: hid_t, _ bytes: UnsafeRawPointer) throws {
        if H5Aexists(handle.id, name) > 0 { H5Adelete(handle.id, name) }
        let attr = H5Acreate2(handle.id, name, type, space, afh5_P_DEFAULT(), afh5_P_DEFAULT())
        guard attr >= 0 else { throw HDF5Error("\(file.path): cannot create attribute '\(name)' on '\(path)'") }
        defer { H5Aclose(attr) }
        guard H5Awrite(attr, type, bytes) >= 0 else { throw HDF5Error("\(file.path): cannot write attribute '\(name)' on '\(path)'") }
    }

    /// Sets a UTF-8 string attribute (fixed length, readable by h5dump and h5py).
    public func setAttribute(_ name: String, _ value: String) throws {
        var bytes = Array(value.utf8)
        let type = H5Tcopy(afh5_T_C_S1())
        defer { H5Tclose(type) }
        H5Tset_size(type, max(bytes.count, 1))
        H5Tset_cset(type, H5T_CSET_UTF8)
        H5Tset_strpad(type, H5T_STR_NULLPAD)
        if bytes.isEmpty { bytes = [0] }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        try bytes.withUnsafeBytes { try replaceAttribute(name, type: type, space: space, $0.baseAddress!) }
    }

    /// Sets a scalar Int64 attribute.
    public func setAttribute(_ name: String, _ value: Int) throws {
        var v = Int64(value)
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        try replaceAttribute(name, type: afh5_T_NATIVE_INT64(), space: space, &v)
    }

    /// Sets a Float64 attribute (a scalar, or a 1-D array).
    public func setAttribute(_ name: String, _ values: [Double], scalar: Bool = false) throws {
        precondition(!scalar || values.count == 1)
        var dims = [hsize_t(values.count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        try values.withUnsafeBytes { try replaceAttribute(name, type: afh5_T_NATIVE_DOUBLE(), space: space, $0.baseAddress!) }
    }

    /// Sets a scalar Float64 attribute.
    public func setAttribute(_ name: String, _ value: Double) throws { try setAttribute(name, [value], scalar: true) }

    /// Names of this group's attributes, sorted.
    public func attributeNames() -> [String] {
        let count = afh5_num_attrs(handle.id)
        guard count > 0 else { return [] }
        return Self.names(count: hsize_t(count)) { i, buf, size in
            Int(H5Aget_name_by_idx(handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, size, afh5_P_DEFAULT()))
        }
    }

    private func openAttribute(_ name: String) throws -> H5Handle {
        guard H5Aexists(handle.id, name) > 0 else { throw HDF5Error("\(file.path): '\(path)' has no attribute '\(name)'") }
        let a = H5Aopen(handle.id, name, afh5_P_DEFAULT())
        guard a >= 0 else { throw HDF5Error("\(file.path): cannot open attribute '\(name)' of '\(path)'") }
        return H5Handle(a, H5Aclose)
    }

    /// Reads a string attribute, fixed or variable length (as h5py writes by default).
    public func stringAttribute(_ name: String) throws -> String {
        let attr = try openAttribute(name)
        let ftype = H5Aget_type(attr.id)
        defer { H5Tclose(ftype) }
        guard H5Tget_class(ftype) == H5T_STRING else { throw HDF5Error("\(file.path): attribute '\(name)' of '\(path)' is not a string") }
        let mem = H5Tcopy(afh5_T_C_S1())
        defer { H5Tclose(mem) }
        H5Tset_cset(mem, H5Tget_cset(ftype))
        if H5Tis_variable_str(ftype) > 0 {
            H5Tset_size(mem, afh5_T_VARIABLE())
            var ptr: UnsafeMutablePointer<CChar>?
            guard H5Aread(attr.id, mem, &ptr) >= 0, let p = ptr else { throw HDF5Error("\(file.path): cannot read attribute '\(name)'") }
            defer { H5free_memory(p) }
            return String(cString: p)
        }
        // One byte more than stored, null-terminated: HDF5 converts any padding for us.
        let size = H5Tget_size(ftype)
        H5Tset_size(mem, size + 1)
        H5Tset_strpad(mem, H5T_STR_NULLTERM)
        var buf = [UInt8](repeating: 0, count: size + 1)
        guard H5Aread(attr.id, mem, &buf) >= 0 else { throw HDF5Error("\(file.path): cannot read attribute '\(name)'") }
        return String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Reads a numeric attribute as Float64 values (a scalar gives one value).
    public func doubleAttribute(_ name: String) throws -> [Double] {
        let attr = try openAttribute(name)
        let space = H5Aget_space(attr.id)
        defer { H5Sclose(space) }
        let n = Int(H5Sget_simple_extent_npoints(space))
        var values = [Double](repeating: 0, count: max(n, 1))
        guard H5Aread(attr.id, afh5_T_NATIVE_DOUBLE(), &values) >= 0 else {
            throw HDF5Error("\(file.path): attribute '\(name)' of '\(path)' is not numeric")
        }
        return values
    }

    /// Reads an integer attribute.
    public func intAttribute(_ name: String) throws -> Int {
        let attr = try openAttribute(name)
        var v: Int64 = 0
        guard H5Aread(attr.id, afh5_T_NATIVE_INT64(), &v) >= 0 else {
            throw HDF5Error("\(file.path): attribute '\(name)' of '\(path)' is not an integer")
        }
        return Int(v)
    }
}
