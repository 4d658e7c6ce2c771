/// A learned vector applied to a column block of a frozen tensor, row by row: IA³ scales it
/// (y ⊙ l, l initialised to 1; Liu et al. 2022), BitFit shifts it (y + δ, a bias delta
/// initialised to 0; Ben Zaken et al. 2021).
public final class ColumnVector {
    enum Slot: CacheSlot {
        case unscaled  // [n, width] the block before scaling (a scale's gradient reads it)
    }

    public enum Operation: Sendable { case scale, shift }
    public let operation: Operation
    /// Where it acts: the point, the first column there and the point's row stride.
    public let point: LayerPoint
    public let column: Int
    public let ld: Int
    public let value: Parameter  // [width]

    public init(name: String, operation: Operation, point: LayerPoint, column: Int, width: Int, ld: Int) {
        self.operation = operation
        self.point = point
        self.column = column
        self.ld = ld
        let v = Tensor(zeros: [width])
        if operation == .scale { for i in 0..<width { v[i] = 1 } }
        value = Parameter(name, v, decay: false)
    }

    var width: Int { value.value.count }

    /// y[:, column ..< column + width] ⊙= l, or += δ. A scale keeps the unscaled block for its gradient.
    func forward(y: UnsafeMutablePointer<Float>, n: Int, keep: Bool, cache: HookCache) {
        let w = width
        let v = value.value.data
        let kept = keep && operation == .scale ? cache.tensor(self, Slot.unscaled, count: n * w).data : nil
        for r in 0..<n {
            let row = y + r * ld + column
            switch operation {
            case .scale:
                kept.map { ($0 + r * w).update(from: row, count: w) }
                for j in 0..<w { row[j] *= v[j] }
            case .shift:
                for j in 0..<w { row[j] += v[j] }
            }
        }
    }

    /// dy (the changed block's gradient) becomes the gradient before the change, in place; the
    /// vector's gradient accumulates unless `frozen`.
    func backward(dy: UnsafeMutablePointer<Float>, n: Int, frozen: Bool, cache: HookCache) {
        let w = width
        let g = value.grad.data
        let v = value.value.data
        let kept = operation == .scale && !frozen ? cache.tensor(self, Slot.unscaled, count: n * w).data : nil
        for r in 0..<n {
            let row = dy + r * ld + column
            switch operation {
            case .scale:
                if let kept { for j in 0..<w { g[j] += row[j] * kept[r * w + j] } }
                for j in 0..<w { row[j] *= v[j] }
            case .shift:
                if !frozen { for j in 0..<w { g[j] += row[j] } }
            }
        }
    }
}

/// A per-token gate g = σ(x·w + b) ∈ (0, 1) (UniPELT), w [H] ~ N(0, 0.02²), b = 0: every gate
/// starts near ½.
public final class TokenGate {
    enum Slot: CacheSlot {
        case gate  // [n] σ(x·w + b)
        case input  // [n, H] x, kept for w's gradient
        case preGradient  // [n] ∂L/∂(x·w + b)
    }

    public let weight: Parameter  // [1, H]
    public let bias: Parameter  // [1]
    let hidden: Int

    public init(prefix: String, hidden: Int, rng: inout SeededRNG) {
        self.hidden = hidden
        weight = Parameter(prefix + "weight", Tensor(randomNormal: [1, hidden], std: 0.02, rng: &rng), decay: true)
        bias = Parameter(prefix + "bias", Tensor(zeros: [1]), decay: false)
    }

    public var parameters: [Parameter] { [weight, bias] }

    /// g[n] = σ(x·w + b), kept in the cache with a copy of x for the backward pass.
    func forward(x: UnsafePointer<Float>, n: Int, keep: Bool, cache: HookCache) -> UnsafePointer<Float> {
        let g = cache.tensor(self, Slot.gate, count: n)
        if keep { cache.tensor(self, Slot.input, count: n * hidden).data.update(from: x, count: n * hidden) }
        BLAS.gemm(transB: true, m: n, n: 1, k: hidden, a: x, lda: hidden, b: weight.value.data, ldb: hidden, c: g.data, ldc: 1)
        for i in 0..<n { g.data[i] = 1 / (1 + VectorMath.exp(-(g.data[i] + bias.value[0]))) }
        return UnsafePointer(g.data)
    }

    /// The gate values of the last forward pass.
    func values(_ cache: HookCache, n: Int) -> UnsafePointer<Float> { UnsafePointer(cache.tensor(self, Slot.gate, count: n).data) }

    /// Given dg = ∂L/∂g [n]: dx += ∂L/∂x (when given); w's and b's gradients accumulate unless `frozen`.
    func backward(dg: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int, frozen: Bool, cache: HookCache) {
        let g = cache.tensor(self, Slot.gate, count: n).data
        let dpre = cache.tensor(self, Slot.preGradient, count: n).data
        for i in 0..<n { dpre[i] = dg[i] * g[i] * (1 - g[i]) }
        if !frozen {
            let x = cache.tensor(self, Slot.input, count: n * hidden).data
            BLAS.gemm(transA: true, m: 1, n: hidden, k: n, a: dpre, lda: 1, b: x, ldb: hidden, beta: 1, c: weight.grad.data, ldc: hidden)
            for i in 0..<n { bias.grad[0] += dpre[i] }
        }
        if let dx { BLAS.gemm(m: n, n: hidden, k: 1, a: dpre, lda: 1, b: weight.value.data, ldb: hidden, beta: 1, c: dx, ldc: hidden) }
    }
}
