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
            let mx = VectorMath.max(x, c)
            VectorMath.map(y, x, c) { VectorMath.exp(scale * ($0 - mx)) }
            let inv = 1 / VectorMath.sum(y, c)
            for i in 0..<c { y[i] *= inv }
        }
    }

    /// dinp += ∂L/∂(input) given the forward output `y`: dx = scale · y ⊙ (dy − ⟨dy, y⟩).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>,
        n: Int, c: Int, ld: Int, scale: Float = 1
    ) {
        for r in 0..<n {
            let y = out + r * ld, dy = dout + r * ld, dx = dinp + r * ld
            let dot = VectorMath.dot(dy, y, c)
            for i in 0..<c { dx[i] += scale * y[i] * (dy[i] - dot) }
        }
    }
}
