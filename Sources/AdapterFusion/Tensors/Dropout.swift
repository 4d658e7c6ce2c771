/// Inverted dropout: keeps each element with probability 1 − p and scales it by 1/(1 − p).
public enum Dropout {
    /// out = inp ⊙ mask, where mask[i] ∈ {0, 1/(1−p)} is drawn from `rng` and stored for backward.
    /// With p == 0 the mask is all ones and out == inp.
    public static func forward(
        out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
        count: Int, p: Float, rng: inout SeededRNG
    ) {
        precondition(p >= 0 && p < 1, "dropout probability must be in [0, 1), got \(p)")
        let keep = 1 / (1 - p)
        for i in 0..<count {
            let m: Float = (p == 0 || rng.nextUniform() >= p) ? keep : 0
            mask[i] = m
            out[i] = inp[i] * m
        }
    }

    /// dinp += dout ⊙ mask.
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, mask: UnsafePointer<Float>,
        count: Int
    ) {
        for i in 0..<count { dinp[i] += dout[i] * mask[i] }
    }
}
