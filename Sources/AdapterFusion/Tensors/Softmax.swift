import CKernels

/// Row-wise softmax over the last dimension (kernels in `Sources/CKernels`).
public enum Softmax {
    /// out[r, 0..<c] = softmax(scale · inp[r, 0..<c]) for `n` rows laid out with row stride `ld`.
    /// In place is allowed (`out == inp`).
    public static func forward(
        out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int, c: Int, ld: Int,
        scale: Float = 1
    ) {
        Profile.measure(.softmax) {
            if out != UnsafeMutablePointer(mutating: inp) {
                for r in 0..<n { (out + r * ld).update(from: inp + r * ld, count: c) }
            }
            afk_softmax(out, n, c, ld, scale)
        }
    }

    /// dinp += ∂L/∂(input) given the forward output `y`: dx = scale · y ⊙ (dy − ⟨dy, y⟩).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>,
        n: Int, c: Int, ld: Int, scale: Float = 1
    ) {
        Profile.measure(.softmax) {
            for r in 0..<n {
                let y = out + r * ld
                let dy = dout + r * ld
                let dx = dinp + r * ld
                let dot = VectorMath.dot(dy, y, c)
                for i in 0..<c { dx[i] += scale * y[i] * (dy[i] - dot) }
            }
        }
    }

    /// dinp = scale · y ⊙ (dy − ⟨dy, y⟩), overwriting `dinp` (the attention backward's form).
    static func backwardOverwrite(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>,
        n: Int, c: Int, ld: Int, scale: Float
    ) {
        afk_softmax_backward(dinp, dout, out, n, c, ld, scale)
    }
}
