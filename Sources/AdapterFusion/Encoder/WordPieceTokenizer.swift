import Foundation

/// Token ids of one encoded text (or text pair), with segment ids and the token strings.
public struct Encoding: Sendable, Equatable {
    public var ids: [Int32]
    public var typeIds: [Int32]
    public var tokens: [String]
}

/// HF `BertTokenizer` for uncased (or cased) WordPiece vocabularies.
///
/// Basic tokenisation: drop NUL, U+FFFD and control characters, map whitespace to spaces, put
/// spaces around CJK ideographs, split on whitespace; then per word: lower-case and strip accents
/// (NFD, drop combining marks) when `lowercase`, split off every punctuation character. Each
/// piece is then cut greedily, longest match first, into vocabulary entries (continuations
/// prefixed `##`); a word longer than 100 characters, or one that cannot be cut, becomes [UNK].
public final class WordPieceTokenizer: @unchecked Sendable {
    public let vocab: [String: Int32]
    public let idToToken: [String]
    public let lowercase: Bool
    public let maxInputCharsPerWord = 100
    public let unkId: Int32, clsId: Int32, sepId: Int32, padId: Int32

    /// Builds a tokenizer from vocabulary entries in id order.
    public init(vocabulary: [String], lowercase: Bool = true, source: String = "vocabulary") throws {
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(vocabulary.count)
        for (i, token) in vocabulary.enumerated() where vocab[token] == nil { vocab[token] = Int32(i) }
        func special(_ t: String) throws -> Int32 {
            guard let id = vocab[t] else { throw ModelError("\(source): special token \(t) is missing") }
            return id
        }
        self.vocab = vocab
        self.idToToken = vocabulary
        self.lowercase = lowercase
        unkId = try special("[UNK]"); clsId = try special("[CLS]")
        sepId = try special("[SEP]"); padId = try special("[PAD]")
    }

    /// Reads a `vocab.txt` (one token per line, line number = id).
    public convenience init(vocabFile path: String, lowercase: Bool = true) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError("\(path): cannot read vocabulary")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ModelError("\(path): vocabulary is not UTF-8") }
        var lines = text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        if lines.last == "" { lines.removeLast() }
        try self.init(vocabulary: lines, lowercase: lowercase, source: path)
    }

    // MARK: Character classes (as HF's BasicTokenizer defines them)

    static func isWhitespace(_ u: Unicode.Scalar) -> Bool {
        u == " " || u == "\t" || u == "\n" || u == "\r" || u.properties.generalCategory == .spaceSeparator
    }

    static func isControl(_ u: Unicode.Scalar) -> Bool {
        if u == "\t" || u == "\n" || u == "\r" { return false }
        switch u.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isPunctuation(_ u: Unicode.Scalar) -> Bool {
        let cp = u.value
        if (33...47).contains(cp) || (58...64).contains(cp) || (91...96).contains(cp) || (123...126).contains(cp) { return true }
        switch u.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    static func isCJK(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
            0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }

    // MARK: Tokenisation

    /// Splits text into words and punctuation marks (HF BasicTokenizer).
    public func basicTokenize(_ text: String) -> [String] {
        // Clean up and isolate CJK ideographs.
        var cleaned = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            if u.value == 0 || u.value == 0xFFFD || Self.isControl(u) { continue }
            if Self.isCJK(u) {
                cleaned.append(" "); cleaned.append(u); cleaned.append(" ")
            } else {
                cleaned.append(Self.isWhitespace(u) ? " " : u)
            }
        }
        let normalized = String(cleaned).precomposedStringWithCanonicalMapping
        var out: [String] = []
        for word in normalized.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace }) {
            var w = String(String.UnicodeScalarView(word))
            if lowercase {
                w = w.lowercased().decomposedStringWithCanonicalMapping
                w = String(String.UnicodeScalarView(w.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }))
            }
            var current = String.UnicodeScalarView()
            for u in w.unicodeScalars {
                if Self.isPunctuation(u) {
                    if !current.isEmpty { out.append(String(current)); current = .init() }
                    out.append(String(u))
                } else if u.properties.isWhitespace {
                    if !current.isEmpty { out.append(String(current)); current = .init() }
                } else {
                    current.append(u)
                }
            }
            if !current.isEmpty { out.append(String(current)) }
        }
        return out
    }

    /// Cuts one word into vocabulary pieces, greedy longest-match-first.
    public func wordpiece(_ word: String) -> [String] {
        let chars = Array(word.unicodeScalars)
        if chars.count > maxInputCharsPerWord { return ["[UNK]"] }
        var pieces: [String] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: String?
            while start < end {
                var piece = String(String.UnicodeScalarView(chars[start..<end]))
                if start > 0 { piece = "##" + piece }
                if vocab[piece] != nil { found = piece; break }
                end -= 1
            }
            guard let found else { return ["[UNK]"] }
            pieces.append(found)
            start = end
        }
        return pieces
    }

    /// Word pieces of `text`, without special tokens.
    public func tokenize(_ text: String) -> [String] {
        basicTokenize(text).flatMap { wordpiece($0) }
    }

    /// `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (segment ids 0 then 1), truncated longest-first
    /// so the total including special tokens is at most `maxLength`.
    public func encode(_ text: String, pair: String? = nil, maxLength: Int? = nil) -> Encoding {
        var a = tokenize(text)
        var b = pair.map(tokenize)
        if let maxLength {
            let budget = max(0, maxLength - (b == nil ? 2 : 3))
            while a.count + (b?.count ?? 0) > budget {
                if let bb = b, bb.count >= a.count, !bb.isEmpty { b!.removeLast() } else { a.removeLast() }
            }
        }
        var tokens = ["[CLS]"] + a + ["[SEP]"]
        var types = [Int32](repeating: 0, count: tokens.count)
        if let b {
            tokens += b + ["[SEP]"]
            types += [Int32](repeating: 1, count: b.count + 1)
        }
        let ids = tokens.map { vocab[$0] ?? unkId }
        return Encoding(ids: ids, typeIds: types, tokens: tokens)
    }

    /// Encodes raw bytes: invalid UTF-8 sequences decode to U+FFFD, which cleaning then drops
    /// (as HF does with `errors="replace"` input), so bad bytes never reach the vocabulary.
    public func encode(bytes: [UInt8], pair: [UInt8]? = nil, maxLength: Int? = nil) -> Encoding {
        encode(String(decoding: bytes, as: UTF8.self), pair: pair.map { String(decoding: $0, as: UTF8.self) }, maxLength: maxLength)
    }
}
