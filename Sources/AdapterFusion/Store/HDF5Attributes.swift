import CHDF5
import Foundation

/// Attributes: strings, integers and floats, readable by h5dump and h5py.
extension HDF5Group {

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
