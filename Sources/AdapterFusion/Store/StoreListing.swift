/// What a store holds, for listing: every readable adapter and fusion with its parameter count,
/// whether its weights still match their recorded fingerprint (each entry is loaded), and, for a
/// fusion, the members changed since it was trained. Entries whose record cannot be read are
/// skipped and reported through `damaged` (see `AdapterStore.list`).
public struct StoreListing {
    public struct AdapterEntry {
        public let record: AdapterRecord
        /// Adapter and head parameters; nil when a dataset cannot be read.
        public let parameters: Int?
        /// Why the entry does not load (weights changed behind the store's back, a dataset
        /// missing or of the wrong shape); nil when it loads intact.
        public let damage: String?
    }

    public struct FusionEntry {
        public let record: FusionRecord
        public let parameters: Int?
        /// Members whose weights differ from the ones the fusion was trained on (or are gone).
        public let changedMembers: [String]
        /// As for adapters; nil when intact, or when changed members keep it from loading at all.
        public let damage: String?
    }

    public let adapters: [AdapterEntry]
    public let fusions: [FusionEntry]

    public init(_ path: String, damaged: (String) -> Void = StoreFile.warn) throws {
        let records = try AdapterStore.list(path, damaged: damaged)
        let fusionRecords = try FusionStore.list(path, damaged: damaged)
        let root = try HDF5File(opening: path).root
        func count(_ g: HDF5Group) throws -> Int {
            try g.children().reduce(0) { $0 + (g.isGroup($1) ? try count(try g.group($1)) : try g.shape(of: $1).reduce(1, *)) }
        }
        func parameters(_ section: String, _ name: String) -> Int? {
            try? count(try root.group("\(section)/\(name)")) + count(try root.group("heads/\(name)"))
        }
        func damage(_ load: () throws -> Void) -> String? {
            do { try load() } catch { return "\(error)" }
            return nil
        }
        adapters = records.map { r in
            AdapterEntry(
                record: r, parameters: parameters("adapters", r.name),
                damage: damage { _ = try AdapterStore.loadMember(path, name: r.name, baseFingerprint: nil) })
        }
        let current = Dictionary(records.map { ($0.name, $0.weightsFingerprint) }, uniquingKeysWith: { a, _ in a })
        fusions = fusionRecords.map { f in
            let changed = f.memberFingerprints.filter { current[$0.key] != $0.value }.keys.sorted()
            return FusionEntry(
                record: f, parameters: parameters("fusions", f.name), changedMembers: changed,
                damage: changed.isEmpty ? damage { _ = try FusionStore.load(path, name: f.name, baseFingerprint: nil) } : nil)
        }
    }
}
