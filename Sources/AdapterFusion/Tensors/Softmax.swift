import Foundation

/// Row-wise softmax over the last dimension.
public enum Softmax {
    /// out[r, 0..<c] = softmax(scale · inp[r, 0..<c]) for `n` rows laid out with row stride `ld`.
    /// In place is allowed (`out == inp`).
    public static func forward(
        out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int, c: Int, ld: Int,
        scale: Float = 1
    ) {
        for r in 0..<n {
            let x = inp + r * ld, y = out + r * ld
            var mx = -Float.infinity
            for i in 0..<c { mx = max(mx, x[i]) }
            var sum: Float = 0
            for i in 0..<c {
                let e = expf(scale * (x[i] - mx))
                y[i] = e
                sum += e
            }
            let inv = 1 / sum
            for i in 0..<c { y[i] *= inv }
        }
    }

    /// dinp += ∂L/∂(scaled input)·scale, from the forward output `y`: dx = scale · y ⊙ (dy − ⟨dy, y⟩).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>,
        n: Int, c: Int, ld: Int, scale: Float = 1
    ) {
        for r in 0..<n {
            let y = out + r * ld, dy = dout + r * ld, dx = dinp + r * ld
            var dot: Float = 0
            for i in 0..<c { dot += dy[i] * y[i] }
            for i in 0..<c { dx[i] += scale * y[i] * (dy[i] - dot) }
        }
    }
}
