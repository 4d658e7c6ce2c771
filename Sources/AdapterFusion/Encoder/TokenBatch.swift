/// A batch of token sequences of different lengths, packed end to end.
///
/// Dense layers run on all tokens of the batch at once ([tokens, H] GEMMs) and attention runs
/// per sequence on its own rows, so no FLOP is spent on padding. This computes exactly what a
/// padded batch with an attention mask computes on its real tokens; `init(padded:mask:)` accepts
/// that form and drops the padding.
public struct TokenBatch: Sendable {
    /// Token ids of all sequences, concatenated.
    public let ids: [Int32]
    /// Segment (token type) ids, aligned with `ids`.
    public let typeIds: [Int32]
    /// Position of each token within its sequence, aligned with `ids`.
    public let positions: [Int32]
    /// Sequence `s` occupies rows `offsets[s] ..< offsets[s + 1]`.
    public let offsets: [Int]
    /// Which example each sequence is (its index in the training set): the key of its dropout
    /// masks, so a sequence drops the same units whatever else shares its batch (0, 1, … unless set).
    public var exampleIDs: [Int]
    /// Soft prompt rows after each sequence's first token (set by `insertingPrompt`), or nil.
    public private(set) var promptLength: Int?

    /// Number of sequences.
    public var count: Int { offsets.count - 1 }
    /// Total number of tokens.
    public var tokenCount: Int { ids.count }
    /// Length of the longest sequence.
    public var maxLength: Int { (0..<count).map { length($0) }.max() ?? 0 }
    /// Length of sequence `s`.
    public func length(_ s: Int) -> Int { offsets[s + 1] - offsets[s] }

    public init(sequences: [[Int32]], typeIds: [[Int32]]? = nil) {
        var ids: [Int32] = []
        var types: [Int32] = []
        var pos: [Int32] = []
        var offsets = [0]
        for (s, seq) in sequences.enumerated() {
            ids += seq
            if let typeIds {
                precondition(typeIds[s].count == seq.count, "type ids and ids differ in length for sequence \(s)")
                types += typeIds[s]
            } else {
                types += Array(repeating: 0, count: seq.count)
            }
            pos += (0..<seq.count).map(Int32.init)
            offsets.append(ids.count)
        }
        self.ids = ids; self.typeIds = types; self.positions = pos; self.offsets = offsets
        exampleIDs = Array(0..<sequences.count)
    }

    /// The batch with `count` soft prompt rows inserted after each sequence's first token:
    /// their ids are placeholders (the encoder takes the prompt's vectors instead), their type
    /// id 0; positions run on through them. Example ids stay.
    public func insertingPrompt(_ count: Int) -> TokenBatch {
        var seqs: [[Int32]] = []
        var types: [[Int32]] = []
        for s in 0..<self.count {
            let r = offsets[s]..<offsets[s + 1]
            let ids = Array(self.ids[r])
            let tt = Array(typeIds[r])
            seqs.append(Array(ids.prefix(1)) + Array(repeating: 0, count: count) + ids.dropFirst())
            types.append(Array(tt.prefix(1)) + Array(repeating: 0, count: count) + tt.dropFirst())
        }
        var b = TokenBatch(sequences: seqs, typeIds: types)
        b.exampleIDs = exampleIDs
        b.promptLength = count
        return b
    }

    /// Each sequence's first token alone, as a batch of one-token sequences with the same
    /// example ids: the rows the last layer computes when only [CLS] states are asked for.
    public var firstTokens: TokenBatch {
        let rows = offsets.dropLast()
        var b = TokenBatch(sequences: rows.map { [ids[$0]] }, typeIds: rows.map { [typeIds[$0]] })
        b.exampleIDs = exampleIDs
        return b
    }

    /// Builds a batch from tokenizer encodings.
    public init(encodings: [Encoding]) {
        self.init(sequences: encodings.map(\.ids), typeIds: encodings.map(\.typeIds))
    }

    /// Accepts the HF form: rows padded to one length with a 0/1 attention mask; keeps the
    /// tokens whose mask is 1 (the mask must be a prefix of ones, as BERT tokenizers produce).
    public init(padded: [[Int32]], mask: [[Int32]], typeIds: [[Int32]]? = nil) {
        var seqs: [[Int32]] = []
        var types: [[Int32]] = []
        for (s, row) in padded.enumerated() {
            let n = mask[s].prefix { $0 != 0 }.count
            precondition(mask[s].dropFirst(n).allSatisfy { $0 == 0 }, "attention mask of row \(s) is not a prefix of ones")
            seqs.append(Array(row.prefix(n)))
            types.append(Array((typeIds?[s] ?? Array(repeating: 0, count: row.count)).prefix(n)))
        }
        self.init(sequences: seqs, typeIds: types)
    }
}
