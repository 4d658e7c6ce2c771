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

    static func random(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
        var rng = SeededRNG(seed: seed)
        return Tensor(randomNormal: shape, std: std, rng: &rng)
    }
}

/// Central finite-difference gradient check.
///
/// `loss` must compute a scalar from the current contents of `x`; `analytic` is the gradient the
/// backward pass produced. Each element is perturbed by ±h and the loss recomputed. Float32
/// with h = 1e-2 on O(1) inputs: truncation error is O(h²·f‴) ≈ 1e-4 and rounding error
/// ≈ 6e-8·|L|/h ≈ 1e-5·|L|, so we accept |num − ana| ≤ 2e-3 + 2e-2·|ana|.
func checkGradient(_ x: Tensor, analytic: Tensor, h: Float = 1e-2, sample: Int = 64,
                   _ loss: () -> Double, sourceLocation: SourceLocation = #_sourceLocation) {
    let stride = max(1, x.count / sample)
    var worst: Float = 0
    for i in Swift.stride(from: 0, to: x.count, by: stride) {
        let saved = x[i]
        x[i] = saved + h; let lp = loss()
        x[i] = saved - h; let lm = loss()
        x[i] = saved
        let numeric = Float((lp - lm) / Double(2 * h))
        let err = abs(numeric - analytic[i]) - 2e-2 * abs(analytic[i])
        worst = max(worst, err)
        #expect(err <= 2e-3, "element \(i): numeric \(numeric) vs analytic \(analytic[i])", sourceLocation: sourceLocation)
        if err > 2e-3 { return }
    }
}

/// Σ y ⊙ r in double precision: a loss whose gradient w.r.t. y is r.
func weightedSum(_ y: Tensor, _ r: Tensor) -> Double {
    var s = 0.0
    for i in 0..<y.count { s += Double(y[i]) * Double(r[i]) }
    return s
}
