import Foundation

/// A HF model directory (`config.json`, `model.safetensors`, `vocab.txt`): where it is by
/// default, how to load it, and its fingerprint.
public enum ModelDirectory {
    /// `$AFUSION_MODEL`, else `models/all-MiniLM-L6-v2` (where `make setup` puts it).
    public static var defaultPath: String {
        ProcessInfo.processInfo.environment["AFUSION_MODEL"] ?? "models/all-MiniLM-L6-v2"
    }

    /// sha256 of all-MiniLM-L6-v2's model.safetensors, as `make setup` verifies it.
    public static let allMiniLMSHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

    /// The encoder and its tokenizer.
    public static func load(_ dir: String) throws -> (BertEncoder, WordPieceTokenizer) {
        try requireModel(dir)
        let encoder = try BertEncoder(directory: dir)
        let tokenizer = try WordPieceTokenizer(vocabFile: (dir as NSString).appendingPathComponent("vocab.txt"))
        return (encoder, tokenizer)
    }

    /// SHA-256 of the model's weights file, cached beside it in `.afusion-sha256`. The cache key
    /// holds size, inode, mtime and ctime: every write changes ctime and no tool can set it back,
    /// so an in-place edit that keeps size and mtime is hashed again.
    public static func fingerprint(_ dir: String) throws -> String {
        try requireModel(dir)
        let weights = (dir as NSString).appendingPathComponent("model.safetensors")
        var st = stat()
        guard stat(weights, &st) == 0 else { throw ModelError("\(weights): \(String(cString: strerror(errno)))") }
        let key = "\(st.st_size) \(st.st_ino) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
        let cache = (dir as NSString).appendingPathComponent(".afusion-sha256")
        if let cached = try? String(contentsOfFile: cache, encoding: .utf8) {
            let parts = cached.split(separator: "\n").map(String.init)
            if parts.count == 2 && parts[0] == key { return parts[1] }
        }
        let fp = try SHA256.file(weights)
        try? "\(key)\n\(fp)".write(toFile: cache, atomically: true, encoding: .utf8)
        return fp
    }

    /// Throws a message that says what to do when `dir` holds no model.
    static func requireModel(_ dir: String) throws {
        guard FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("config.json")) else {
            throw ModelError("no model at '\(dir)' (config.json missing). Run `make setup` or pass --model DIR (or set AFUSION_MODEL).")
        }
    }

    /// A short, readable name for the base model: its directory name.
    public static func name(_ dir: String) -> String { URL(fileURLWithPath: dir).standardized.lastPathComponent }
}
