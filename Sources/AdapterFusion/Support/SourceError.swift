import Foundation

/// An error in a user's file: task file, data file, recipe. Prints as
/// `file:line:col: error: message`, then the offending line with a caret, then a hint.
public struct SourceError: Error, CustomStringConvertible, Equatable {
    public let file: String
    /// 1-based; 0 when the error concerns the whole file.
    public let line: Int
    /// 1-based; 0 when unknown.
    public let column: Int
    public let message: String
    public let hint: String?
    /// The text of the offending line, when known.
    public let sourceLine: String?

    public init(file: String, line: Int = 0, column: Int = 0, _ message: String, hint: String? = nil, sourceLine: String? = nil) {
        self.file = file; self.line = line; self.column = column
        self.message = message; self.hint = hint; self.sourceLine = sourceLine
    }

    /// An error at (line, column) of `text`, quoting that line.
    public init(file: String, text: String, line: Int, column: Int, _ message: String, hint: String? = nil) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let src = line >= 1 && line <= lines.count ? String(lines[line - 1]) : nil
        self.init(file: file, line: line, column: column, message, hint: hint, sourceLine: src)
    }

    public var description: String {
        var s = file
        if line > 0 { s += ":\(line)" }
        if line > 0 && column > 0 { s += ":\(column)" }
        s += ": error: \(message)"
        if let sourceLine {
            let shown = sourceLine.count > 200 ? String(sourceLine.prefix(200)) + "…" : sourceLine
            s += "\n    \(shown)"
            if column > 0 && column <= 201 {
                // Keep tabs so the caret lines up under the column.
                let pad = shown.prefix(column - 1).map { $0 == "\t" ? "\t" : " " }.joined()
                s += "\n    \(pad)^"
            }
        }
        if let hint { s += "\n    hint: \(hint)" }
        return s
    }
}

/// "did you mean 'x'?" for the closest candidate, when one is close enough to be a likely typo.
public func didYouMean(_ word: String, in candidates: [String]) -> String? {
    closestMatch(word, in: candidates).map { "did you mean '\($0)'?" }
}

/// The closest candidate by edit distance, when it is close enough to be a likely typo.
public func closestMatch(_ word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        var prev = Array(0...b.count)
        var cur = prev
        for i in 1...a.count {
            cur[0] = i
            for j in 1...max(b.count, 1) where j <= b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
    guard word.count <= 200 else { return nil }  // a huge token is no typo
    let w = Array(word.lowercased())
    let scored = candidates.map { ($0, distance(w, Array($0.lowercased()))) }.min { $0.1 < $1.1 }
    guard let (best, d) = scored, d <= max(2, word.count / 3), d < word.count else { return nil }
    return best
}

/// A problem with a model directory, config or checkpoint; the message names the file.
public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
