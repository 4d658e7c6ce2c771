import CHDF5
import Foundation

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
    static func names(count: hsize_t, _ get: (hsize_t, UnsafeMutablePointer<CChar>?, Int) -> Int) -> [String] {
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
}
