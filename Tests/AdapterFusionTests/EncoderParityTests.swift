import AdapterFusion
import Foundation
import Testing

/// The encoder against reference values computed with HF transformers (fixture
/// minilm-golden.json: first 8 dims of the last hidden [CLS] state and of the mean-pooled,
/// L2-normalised embedding). The fixture has 6 decimals (±5e-7), and Float32 accumulation
/// over 6 layers differs from PyTorch's by ~1e-6, so 1e-4 absolute is a safe and still tight bound.
@Suite struct EncoderParityTests {
    struct Golden: Decodable {
        let ids: [Int32]
        let cls_last_hidden_first8: [Float]
        let meanpool_norm_first8: [Float]
    }

    func golden() throws -> [(String, Golden)] {
        try JSONDecoder().decode([String: Golden].self, from: Support.fixture("minilm-golden.json"))
            .sorted { $0.key < $1.key }
    }

    @Test func batchedForwardMatchesReference() throws {
        let (encoder, tokenizer) = try Support.model.get()
        let cases = try golden()
        let batch = TokenBatch(encodings: cases.map { tokenizer.encode($0.0) })
        let hidden = try encoder.forward(batch, workspace: EncoderWorkspace(config: encoder.config))
        #expect(hidden.shape == [batch.tokenCount, 384])
        let cls = (0..<batch.count).map { s in Array(UnsafeBufferPointer(start: hidden.data + batch.offsets[s] * 384, count: 384)) }
        let mean = Pooling.meanNormalized(hidden, batch: batch)
        for (s, (sentence, g)) in cases.enumerated() {
            for j in 0..<8 {
                #expect(abs(cls[s][j] - g.cls_last_hidden_first8[j]) <= 1e-4, "\(sentence) cls[\(j)]")
                #expect(abs(mean[s][j] - g.meanpool_norm_first8[j]) <= 1e-4, "\(sentence) mean[\(j)]")
            }
            #expect(abs(mean[s].reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
        }
        // The top layer on the [CLS] rows alone gives the same states (same bound).
        let first = try encoder.forward(batch, workspace: EncoderWorkspace(config: encoder.config), rows: .firstTokens)
        #expect(first.shape == [batch.count, 384])
        for (s, (sentence, g)) in cases.enumerated() {
            for j in 0..<8 { #expect(abs(first[s * 384 + j] - g.cls_last_hidden_first8[j]) <= 1e-4, "\(sentence) first-token cls[\(j)]") }
        }
    }

    /// Packing sequences of different lengths together must not change any of them: each is
    /// compared with its own single-sequence pass (bitwise-close: only GEMM blocking differs).
    @Test func batchingDoesNotChangeResults() throws {
        let (encoder, tokenizer) = try Support.model.get()
        let texts = try golden().map(\.0) + ["A much longer sentence, so that the batch mixes quite different lengths of input text."]
        let encs = texts.map { tokenizer.encode($0) }
        let ws = EncoderWorkspace(config: encoder.config)
        let batch = TokenBatch(encodings: encs)
        let all = try encoder.forward(batch, workspace: ws)
        for (s, e) in encs.enumerated() {
            let one = try encoder.forward(TokenBatch(encodings: [e]), workspace: ws)
            for k in 0..<one.count {
                #expect(abs(one[k] - all[batch.offsets[s] * 384 + k]) <= 1e-5)
            }
        }
    }

    /// The HF form (padded rows + attention mask) gives the same hidden states as packing.
    @Test func paddedInputWithMask() throws {
        let (encoder, tokenizer) = try Support.model.get()
        let a = tokenizer.encode("The cat sits outside").ids
        let b = tokenizer.encode("A man is eating a piece of bread.").ids
        let T = max(a.count, b.count)
        func pad(_ x: [Int32]) -> [Int32] { x + Array(repeating: 0, count: T - x.count) }
        func mask(_ x: [Int32]) -> [Int32] { Array(repeating: 1, count: x.count) + Array(repeating: 0, count: T - x.count) }
        let padded = TokenBatch(padded: [pad(a), pad(b)], mask: [mask(a), mask(b)])
        let packed = TokenBatch(sequences: [a, b])
        #expect(padded.ids == packed.ids && padded.offsets == packed.offsets)
        let ws = EncoderWorkspace(config: encoder.config)
        #expect(try encoder.forward(padded, workspace: ws).array == encoder.forward(packed, workspace: ws).array)
    }

    @Test func sentencePairUsesTokenTypes() throws {
        let (encoder, tokenizer) = try Support.model.get()
        let pair = tokenizer.encode("A man is eating food.", pair: "A man is eating a piece of bread.")
        var flat = pair
        flat.typeIds = Array(repeating: 0, count: pair.ids.count)
        let ws = EncoderWorkspace(config: encoder.config)
        let h1 = try encoder.forward(TokenBatch(encodings: [pair]), workspace: ws)
        let h0 = try encoder.forward(TokenBatch(encodings: [flat]), workspace: ws)
        #expect(h1.array != h0.array)
    }

    @Test func rejectsOutOfRangeIds() throws {
        let (encoder, _) = try Support.model.get()
        let ws = EncoderWorkspace(config: encoder.config)
        #expect(throws: ModelError.self) { try encoder.forward(TokenBatch(sequences: [[101, 40000, 102]]), workspace: ws) }
        #expect(throws: ModelError.self) { try encoder.forward(TokenBatch(sequences: [[101, 102]], typeIds: [[0, 2]]), workspace: ws) }
        #expect(throws: ModelError.self) {
            try encoder.forward(TokenBatch(sequences: [Array(repeating: 1000, count: 513)]), workspace: ws)
        }
    }
}
