import AdapterFusion
import Foundation
import Testing

/// Shared helpers for the tests.
enum Support {
    /// Package root (two folders above this file's folder).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The real model, installed by `make setup` (or `$AFUSION_MODEL`).
    static var modelDirectory: String {
        ProcessInfo.processInfo.environment["AFUSION_MODEL"]
            ?? packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2").path
    }

    /// Loads the model once per process; a missing model is a failure that says how to get it.
    static let model: Result<(BertEncoder, WordPieceTokenizer), Error> = Result {
        let dir = modelDirectory
        guard FileManager.default.fileExists(atPath: dir + "/model.safetensors") else {
            throw ModelError("model not found at \(dir): run `make setup` (or `make test`) first")
        }
        return (try BertEncoder(directory: dir), try WordPieceTokenizer(vocabFile: dir + "/vocab.txt"))
    }

    static func fixture(_ name: String) throws -> Data {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil))
        return try Data(contentsOf: url)
    }

    /// A fresh temporary directory, removed by the caller's `defer`.
    static func tempDir() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("afusion-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Random weights for a BERT of config `c`, under HF names.
    static func tinyBertTensors(_ c: BertConfig, prefix: String = "", legacyEmbeddingLN: Bool = false) -> [(String, Tensor)] {
        var tensors: [(String, Tensor)] = []
        var seed: UInt64 = 1
        let H = c.hiddenSize
        let F = c.intermediateSize
        func add(_ name: String, _ shape: [Int], ones: Bool = false) {
            let t = random(shape, seed: seed, std: 0.2)
            if ones { for i in 0..<t.count { t[i] += 1 } }
            tensors.append((prefix + name, t)); seed += 1
        }
        add("embeddings.word_embeddings.weight", [c.vocabSize, H]); add("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, H])
        add("embeddings.token_type_embeddings.weight", [c.typeVocabSize, H])
        add(legacyEmbeddingLN ? "embeddings.LayerNorm.gamma" : "embeddings.LayerNorm.weight", [H], ones: true)
        add(legacyEmbeddingLN ? "embeddings.LayerNorm.beta" : "embeddings.LayerNorm.bias", [H])
        for l in 0..<c.numHiddenLayers {
            let p = "encoder.layer.\(l)."
            for part in ["query", "key", "value"] { add(p + "attention.self.\(part).weight", [H, H]); add(p + "attention.self.\(part).bias", [H]) }
            add(p + "attention.output.dense.weight", [H, H]); add(p + "attention.output.dense.bias", [H])
            add(p + "attention.output.LayerNorm.weight", [H], ones: true); add(p + "attention.output.LayerNorm.bias", [H])
            add(p + "intermediate.dense.weight", [F, H]); add(p + "intermediate.dense.bias", [F])
            add(p + "output.dense.weight", [H, F]); add(p + "output.dense.bias", [H])
            add(p + "output.LayerNorm.weight", [H], ones: true); add(p + "output.LayerNorm.bias", [H])
        }
        return tensors
    }

    /// A tiny random BERT (H 8, 2 heads, FFN 2H, 3 layers, vocab 30) for gradient checks.
    static func tinyEncoder(layers: Int = 3, hidden: Int = 8) throws -> BertEncoder {
        let c = BertConfig(
            hiddenSize: hidden, numHiddenLayers: layers, numAttentionHeads: 2, intermediateSize: 2 * hidden,
            maxPositionEmbeddings: 16, vocabSize: 30, typeVocabSize: 2)
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("model.safetensors").path
        try SafeTensorsFile.write(tinyBertTensors(c), to: path)
        return BertEncoder(config: c, weights: try BertWeights(file: SafeTensorsFile(path: path), config: c))
    }

    static func random(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
        var rng = SeededRNG(seed: seed)
        return Tensor(randomNormal: shape, std: std, rng: &rng)
    }
}

/// Central finite-difference gradient check.
///
/// `loss` must compute a scalar from the current contents of `x`; `analytic` is the gradient the
/// backward pass produced. Sampled elements are perturbed by ±h and the loss recomputed.
/// Float32 with h = 1e-2: truncation error is O(h²·f‴) ≈ 1e-4 relative, rounding error
/// ≈ 6e-8·|L|/h ≈ 1e-5·|L| absolute. We accept |num − ana| ≤ 3e-2·|ana| + 1e-2·G + 2e-5·|L|,
/// where G is the largest |gradient| in the tensor, and require G > 5e-4·|L| (rounding noise
/// then at most 2 % of G), so the gradients stand above the noise and an error of a few
/// percent of the tensor's gradient scale fails (checked: dropping a 1/√d scale or a dropout mask in backward fails).
func checkGradient(
    _ x: Tensor, analytic: Tensor, h: Float = 1e-2, sample: Int = 64,
    _ loss: () -> Double, sourceLocation: SourceLocation = #_sourceLocation
) {
    let g = (0..<analytic.count).reduce(Float(0)) { max($0, abs(analytic[$1])) }
    let l0 = Float(abs(loss()))
    #expect(g > 5e-4 * max(l0, 1e-3), "gradient too small to check (max \(g))", sourceLocation: sourceLocation)
    let stride = max(1, x.count / sample)
    for i in Swift.stride(from: 0, to: x.count, by: stride) {
        let saved = x[i]
        x[i] = saved + h; let lp = loss()
        x[i] = saved - h; let lm = loss()
        x[i] = saved
        let numeric = Float((lp - lm) / Double(2 * h))
        let tol = 3e-2 * abs(analytic[i]) + 1e-2 * g + 2e-5 * l0
        #expect(abs(numeric - analytic[i]) <= tol, "element \(i): numeric \(numeric) vs analytic \(analytic[i])", sourceLocation: sourceLocation)
        if abs(numeric - analytic[i]) > tol { return }
    }
}

/// Σ y ⊙ r in double precision: a loss whose gradient w.r.t. y is r.
func weightedSum(_ y: Tensor, _ r: Tensor) -> Double {
    var s = 0.0
    for i in 0..<y.count { s += Double(y[i]) * Double(r[i]) }
    return s
}
