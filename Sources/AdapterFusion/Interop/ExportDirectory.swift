import Foundation

/// The folder an export writes into, checked before anything is written: never a file, never a
/// folder that already holds something (another export would end up mixed with this one) unless
/// the user says `force`, and OS refusals in plain words ("Permission denied").
public enum ExportDirectory {
    /// Checks (or creates) the folder, then runs `body` to write into it. If `body` fails, a
    /// folder this call created is removed again, so a refused export leaves nothing behind.
    public static func write(_ path: String, force: Bool, _ body: () throws -> Void) throws {
        let existed = FileManager.default.fileExists(atPath: path)
        try prepare(path, force: force)
        do { try body() } catch {
            if !existed { try? FileManager.default.removeItem(atPath: path) }
            throw error
        }
    }

    public static func prepare(_ path: String, force: Bool) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw ModelError("\(path) is a file, not a folder; choose a folder to export into") }
            let contents = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
            if !contents.isEmpty && !force {
                let shown = contents.prefix(5).joined(separator: ", ") + (contents.count > 5 ? ", …" : "")
                throw ModelError(
                    "\(path) is not empty (it holds \(shown)); export into an empty or new folder, or pass --force to write into it anyway (files of the same names are replaced)"
                )
            }
        } else {
            try make(path)
        }
        guard access(path, W_OK | X_OK) == 0 else { throw ModelError("cannot write into \(path): \(String(cString: strerror(errno)))") }
    }

    /// `mkdir -p`, with the OS's reason on failure (naming the folder asked for, `target`).
    static func make(_ path: String, for target: String? = nil) throws {
        let target = target ?? path
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw ModelError("cannot create folder \(target): \(path) is a file") }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try make(parent, for: target) }
        guard mkdir(path, 0o777) == 0 || errno == EEXIST else {
            throw ModelError("cannot create folder \(target): \(String(cString: strerror(errno)))")
        }
    }
}
