import CKernels

/// A byte per element: which elements dropout keeps (1) or zeroes (0). A quarter of a Float mask.
public final class Mask: @unchecked Sendable {
    public let count: Int
    public let data: UnsafeMutablePointer<UInt8>

    public init(count: Int) {
        self.count = count
        data = .allocate(capacity: max(count, 1))
        data.initialize(repeating: 1, count: max(count, 1))
    }

    deinit { data.deallocate() }
}

/// Inverted dropout: keeps each element with probability 1 − p and scales it by 1/(1 − p).
public enum Dropout {
    /// Draws a keep mask from `rng` (all ones when p == 0). Each decision uses 16 random bits
    /// (four per 64-bit draw): an element drops when its bits fall below round(p · 2¹⁶).
    public static func sample(mask: UnsafeMutablePointer<UInt8>, count: Int, p: Float, rng: inout SeededRNG) {
        precondition(p >= 0 && p < 1, "dropout probability must be in [0, 1), got \(p)")
        if p == 0 { mask.update(repeating: 1, count: count); return }
        let threshold = UInt64((p * 65536).rounded())
        var i = 0
        while i < count {
            var bits = rng.next()
            for _ in 0..<min(4, count - i) {
                mask[i] = (bits & 0xFFFF) >= threshold ? 1 : 0
                bits >>= 16
                i += 1
            }
        }
    }

    /// out = inp ⊙ mask / (1 − p); in place is allowed. Being linear, this is also the backward
    /// of dropout applied to a gradient in place.
    public static func apply(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, mask: UnsafePointer<UInt8>, count: Int, p: Float) {
        let keep = 1 / (1 - p)
        VectorMath.elements(count) { a, b in afk_mask_scale(out + a, inp + a, mask + a, b - a, keep) }
    }

    /// Draws a mask and applies it: out = dropout(inp).
    public static func forward(
        out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>, inp: UnsafePointer<Float>,
        count: Int, p: Float, rng: inout SeededRNG
    ) {
        sample(mask: mask, count: count, p: p, rng: &rng)
        apply(out: out, inp: inp, mask: mask, count: count, p: p)
    }

    /// dinp += dout ⊙ mask / (1 − p).
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, mask: UnsafePointer<UInt8>, count: Int, p: Float
    ) {
        let keep = 1 / (1 - p)
        for i in 0..<count { dinp[i] += dout[i] * (Float(mask[i]) * keep) }
    }
}
