import Foundation

/// What may overwrite what in a store. Adapters and fusions live in their own sections but share
/// `/heads/<name>`, so a name belongs to one entry of one kind:
///
/// | saving      | an adapter of that name            | a fusion of that name               |
/// |-------------|------------------------------------|-------------------------------------|
/// | an adapter  | only with `replace` (`--replace`)  | never (it would take the fusion's head) |
/// | a fusion    | never (it would take the adapter's head) | only with `replace`           |
///
/// The save functions check this under the store's lock; commands call `checkSave` first too,
/// so a conflict is reported before any training, not after it.
public enum StoreEntryKind: String, Sendable {
    case adapter, fusion

    var section: String { self == .adapter ? "adapters" : "fusions" }
    var other: StoreEntryKind { self == .adapter ? .fusion : .adapter }
    var article: String { self == .adapter ? "an adapter" : "a fusion" }
}

/// A save that would replace or break a stored entry.
public struct StoreConflict: Error, CustomStringConvertible {
    public let description: String
}

extension AdapterStore {
    /// Throws a `StoreConflict` when saving `kind` `name` into the store at `path` would replace an
    /// entry without `replace`, or would take the head of an entry of the other kind. A missing
    /// store has no conflicts.
    public static func checkSave(_ path: String, kind: StoreEntryKind, name: String, replace: Bool) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        try checkSave(root: try HDF5File(opening: path).root, path: path, kind: kind, name: name, replace: replace)
    }

    static func checkSave(root: HDF5Group, path: String, kind: StoreEntryKind, name: String, replace: Bool) throws {
        if root.contains("\(kind.other.section)/\(name)") {
            throw StoreConflict(
                description:
                    "\(path) holds \(kind.other.article) named '\(name)'; \(kind.article) of the same name would replace its head "
                    + "(/heads/\(name)) and break it. Choose another name (--name)")
        }
        guard !replace, root.contains("\(kind.section)/\(name)") else { return }
        let g = try? root.group("\(kind.section)/\(name)")
        let facts = [
            (try? g?.stringAttribute("task")).flatMap { $0 }.flatMap { $0.isEmpty ? nil : "task \($0)" },
            (try? g?.stringAttribute("created")).flatMap { $0 }.flatMap { $0.isEmpty ? nil : "saved \($0)" },
        ].compactMap { $0 }
        let about = facts.isEmpty ? "" : " (" + facts.joined(separator: ", ") + ")"
        throw StoreConflict(
            description:
                "\(path) already holds \(kind.rawValue) '\(name)'\(about); pass --replace to replace it, or --name to store this one under another name"
        )
    }

    /// Names of the stored fusions that have adapter `name` among their members, which replacing
    /// the adapter would leave with changed members (they report it until retrained).
    public static func fusionsUsing(_ path: String, adapter name: String) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try FusionStore.list(path, damaged: { _ in }).filter { $0.memberFingerprints[name] != nil }.map(\.name).sorted()
    }
}
