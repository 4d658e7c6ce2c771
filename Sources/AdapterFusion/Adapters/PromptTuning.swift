/// Prompt tuning (Lester et al. 2021): `length` soft tokens, inserted after each sequence's
/// first token ([CLS], so the pooled token stays the first), whose input embeddings are trained.
/// They take the place of word embeddings: positions, token type 0 and the embedding LayerNorm
/// apply to them as to any token. Stored as `prompt/embeddings` [length, H].
public final class PromptModule {
    public let embeddings: Parameter  // [length, H]
    public var length: Int { embeddings.value.shape[0] }

    public init(length: Int, hidden: Int, rng: inout SeededRNG) {
        embeddings = Parameter("prompt/embeddings", Tensor(randomNormal: [length, hidden], std: 0.02, rng: &rng), decay: false)
    }

    /// Starts the soft tokens from rows of the word-embedding table [vocab, H] (real words).
    public func initialize(from table: Tensor, ids: [Int32]) {
        let H = embeddings.value.shape[1]
        for j in 0..<length { (embeddings.value.data + j * H).update(from: table.data + Int(ids[j % ids.count]) * H, count: H) }
    }

    /// Token ids to start from: the label names' word pieces (`labels`, repeated to fill), or
    /// `length` distinct real words drawn with the seed (ids past BERT's [unused] block, whole
    /// alphabetic words).
    public static func initialIDs(
        _ config: PromptConfig, labels: [String], tokenizer: WordPieceTokenizer, seed: UInt64
    ) -> [Int32] {
        if config.initialization == "labels" {
            let ids = labels.flatMap { tokenizer.encode($0).ids.dropFirst().dropLast() }
            if !ids.isEmpty { return ids }
        }
        let vocab = tokenizer.idToToken
        let words = vocab.indices.filter { i in
            let w = vocab[i]
            return i >= 1000 && w.count >= 3 && w.allSatisfy { $0.isLetter && $0.isASCII }
        }
        var rng = SeededRNG(seed: seed)
        var out: [Int32] = []
        while out.count < config.length && !words.isEmpty {
            let id = Int32(words[Int(rng.next() % UInt64(words.count))])
            if !out.contains(id) { out.append(id) }
        }
        return out
    }
}
