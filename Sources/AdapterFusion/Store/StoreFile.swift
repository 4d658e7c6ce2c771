import Foundation

/// The file-level guarantees of a store: one writer at a time, atomic replacement, the file's
/// mode, owner and symlinks kept, stale temp files cleaned, and clear reasons when it cannot
/// be written.
///
/// A writer takes an exclusive `flock` on `<store>.lock` before it reads the old store and
/// holds it until the new file has been renamed over the old one, so two writers never lose
/// each other's update: the second waits (saying so) and then copies what the first wrote.
public enum StoreFile {
    /// The file a store path names: a symlink (or a chain of them) is followed to its target,
    /// so saving updates the target instead of replacing the link with a regular file.
    public static func resolve(_ path: String) throws -> String {
        var current = path
        for _ in 0..<40 {
            var st = stat()
            guard lstat(current, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { return current }
            guard let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: current) else {
                throw HDF5Error("\(path): cannot read the symbolic link \(current)")
            }
            current = dest.hasPrefix("/") ? dest : ((current as NSString).deletingLastPathComponent as NSString).appendingPathComponent(dest)
        }
        throw HDF5Error("\(path): too many levels of symbolic links")
    }

    static func directory(of path: String) -> String {
        let d = (path as NSString).deletingLastPathComponent
        return d.isEmpty ? "." : d
    }

    /// Writes "warning: …" to stderr (the default report of a damaged store entry).
    public static func warn(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }

    static func reason(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// Checks, before any long work, that a save to `path` can succeed: the folder exists (or
    /// can be created) and is writable, and an existing store is a writable HDF5 file.
    public static func checkWritable(_ path: String) throws {
        let target = try resolve(path)
        var st = stat()
        if stat(target, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFREG else { throw HDF5Error("\(path): not a regular file (a folder?); choose a store file path") }
            guard st.st_mode & 0o222 != 0 else {
                throw HDF5Error(
                    "\(path): the store is read-only (mode \(String(st.st_mode & 0o777, radix: 8))); make it writable (chmod u+w) or choose another store"
                )
            }
            guard access(target, R_OK) == 0 else { throw HDF5Error("\(path): cannot read the store: \(reason())") }
            _ = try HDF5File(opening: target)  // a corrupt or foreign file fails here, before training
        } else if errno != ENOENT {
            throw HDF5Error("\(path): \(reason())")
        }
        // The nearest existing folder must be writable (missing folders are created at save).
        var dir = directory(of: target)
        while !FileManager.default.fileExists(atPath: dir) {
            let parent = (dir as NSString).deletingLastPathComponent
            if parent.isEmpty {  // a relative path: its first folder is made in the working directory
                dir = "."
                break
            }
            if parent == dir { break }
            dir = parent
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), !isDir.boolValue {
            throw HDF5Error("\(path): '\(dir)' is a file, not a folder")
        }
        guard access(dir, W_OK | X_OK) == 0 else { throw HDF5Error("\(path): cannot write in folder '\(dir)': \(reason())") }
        // access() says yes to root everywhere; creating the lock file (which saving needs
        // anyway) proves it on file systems that refuse writes (read-only mounts, /proc).
        if dir == directory(of: target) {
            let fd = open(target + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw HDF5Error("\(path): cannot write in folder '\(dir)': \(reason())") }
            close(fd)
        }
    }

    /// Holds the exclusive lock of a store while a writer reads, rewrites and renames it.
    final class Lock {
        private let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { flock(fd, LOCK_UN); close(fd) }
    }

    /// Takes the store's writer lock, waiting (with a message on stderr) while another process holds it.
    static func lock(_ target: String) throws -> Lock {
        let lockPath = target + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HDF5Error("\(target): cannot create the lock file \(lockPath): \(reason())") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK else {
                let r = reason(); close(fd)
                throw HDF5Error("\(target): cannot lock \(lockPath): \(r)")
            }
            FileHandle.standardError.write(Data("waiting for another process writing \(target)…\n".utf8))
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else { let r = reason(); close(fd); throw HDF5Error("\(target): cannot lock \(lockPath): \(r)") }
            }
        }
        return Lock(fd: fd)
    }

    /// Temp files of writers that died (`<store>.tmp-<pid>`): with the lock held, no live
    /// writer can own one.
    static func removeStaleTemps(of target: String) {
        let dir = directory(of: target)
        let base = (target as NSString).lastPathComponent + ".tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(base) {
            unlink((dir as NSString).appendingPathComponent(name))
        }
    }

    /// Removes temp files of dead writers when no writer holds the store's lock (called when a
    /// store is listed). Does nothing when the lock is busy or there is no lock file.
    public static func cleanUp(_ path: String) {
        guard let target = try? resolve(path) else { return }
        let fd = open(target + ".lock", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return }
        removeStaleTemps(of: target)
        flock(fd, LOCK_UN)
    }

    /// Under the store's lock: `build(target)` returns the bytes of the complete new store,
    /// which are written to a temp file beside it with the old file's mode and owner, synced,
    /// and renamed over the store. Any error (a full disk among them) leaves the old store
    /// untouched and removes the temp file.
    static func replace(_ path: String, _ build: (_ target: String) throws -> [UInt8]) throws {
        let target = try resolve(path)
        try checkWritable(target)
        let dir = directory(of: target)
        if !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw HDF5Error("\(path): cannot create folder '\(dir)': \(error.localizedDescription)")
            }
        }
        let lock = try lock(target)
        defer { withExtendedLifetime(lock) {} }
        removeStaleTemps(of: target)
        let tmp = target + ".tmp-\(getpid())"
        var committed = false
        defer { if !committed { unlink(tmp) } }
        var old = stat()
        let existed = stat(target, &old) == 0
        if existed && old.st_mode & 0o222 == 0 {
            throw HDF5Error("\(path): the store is read-only (mode \(String(old.st_mode & 0o777, radix: 8))); nothing was saved")
        }
        let bytes = try build(target)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HDF5Error("\(path): cannot create \(tmp): \(reason()); the old store is unchanged") }
        var failure: String?
        bytes.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                let n = write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 { if errno == EINTR { continue }; failure = reason(); return }
                done += n
            }
        }
        if failure == nil && existed {
            fchmod(fd, old.st_mode & 0o7777)
            if old.st_uid != geteuid() || old.st_gid != getegid() { _ = fchown(fd, old.st_uid, old.st_gid) }
        }
        if failure == nil && fsync(fd) != 0 { failure = reason() }
        if close(fd) != 0 && failure == nil { failure = reason() }
        if let failure { throw HDF5Error("\(path): cannot write the new store: \(failure); the old store is unchanged") }
        guard rename(tmp, target) == 0 else {
            throw HDF5Error("\(path): cannot replace the store: \(reason()); the old store is unchanged")
        }
        committed = true
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
