/// What a store holds, for listing: every readable adapter and fusion with its parameter count
/// and, for a fusion, the members changed since it was trained. Damaged entries are skipped and
/// reported through `damaged` (see `AdapterStore.list`).
public struct StoreListing {
    public struct AdapterEntry {
        public let record: AdapterRecord
        /// Adapter and head parameters; nil when a dataset cannot be read.
        public let parameters: Int?
    }

    public struct FusionEntry {
        public let record: FusionRecord
        public let parameters: Int?
        /// Members whose weights differ from the ones the fusion was trained on (or are gone).
        public let changedMembers: [String]
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
        adapters = records.map { AdapterEntry(record: $0, parameters: parameters("adapters", $0.name)) }
        let current = Dictionary(records.map { ($0.name, $0.weightsFingerprint) }, uniquingKeysWith: { a, _ in a })
        fusions = fusionRecords.map { f in
            FusionEntry(
                record: f, parameters: parameters("fusions", f.name),
                changedMembers: f.memberFingerprints.filter { current[$0.key] != $0.value }.keys.sorted())
        }
    }
}
