import Foundation

/// A contiguous, row-major Float32 tensor that owns its storage.
///
/// The storage is a raw allocation rather than a Swift array so that hot loops and BLAS calls see a
/// stable pointer with no copy-on-write or exclusivity checks. The last dimension is the fastest.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let count: Int
    /// The elements, row-major.
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor of the given shape. The zeros come from `calloc`: large tensors get
    /// fresh pages that the OS maps only when first written, so a buffer sized for the largest
    /// batch costs memory only for the part a pass uses.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        guard let raw = calloc(max(count, 1), MemoryLayout<Float>.stride) else {
            fatalError("out of memory: a tensor of \(shape) (\(count * 4) bytes)")
        }
        self.data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(zeros: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A tensor with entries drawn from N(0, std²) using a seeded generator.
    public convenience init(randomNormal shape: [Int], std: Float, rng: inout SeededRNG) {
        self.init(zeros: shape)
        for i in 0..<count { data[i] = std * rng.nextNormal() }
    }

    /// A tensor with entries drawn from U(−bound, bound) using a seeded generator.
    public convenience init(randomUniform shape: [Int], bound: Float, rng: inout SeededRNG) {
        self.init(zeros: shape)
        for i in 0..<count { data[i] = (2 * rng.nextUniform() - 1) * bound }
    }

    deinit { free(data) }

    /// Number of rows when viewed as a matrix [count / last, last].
    public var rows: Int { shape.count <= 1 ? 1 : count / shape[shape.count - 1] }
    /// Size of the last dimension.
    public var cols: Int { shape.last ?? 1 }

    /// The elements as an array (a copy).
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Sets every element to zero.
    public func zero() { data.update(repeating: 0, count: count) }

    /// Copies all elements from `other`, which must have the same element count.
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy between tensors of \(other.shape) and \(shape)")
        data.update(from: other.data, count: count)
    }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    public var description: String {
        let head = (0..<min(count, 6)).map { String(format: "%.5f", data[$0]) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 6 ? ", …" : "")]"
    }
}

/// A small, fast, seedable generator (xoshiro256**), so every random draw in training and tests
/// is reproducible from one integer seed.
public struct SeededRNG: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        // SplitMix64 expands the seed into the four words of state.
        var z = seed
        func next() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }

    /// Standard normal draw (Box–Muller).
    public mutating func nextNormal() -> Float {
        let u1 = max(nextUniform(), 1e-7)
        let u2 = nextUniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
