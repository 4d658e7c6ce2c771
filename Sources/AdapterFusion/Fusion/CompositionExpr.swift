import Foundation

/// How adapters combine, as a recipe's `compose` line says (without source positions).
public indirect enum CompositionExpr: Equatable, Sendable, CustomStringConvertible {
    case adapter(String)
    /// Outputs of each feed the next.
    case stack([CompositionExpr])
    /// Weighted (or, with nil, equal) mean of the members' outputs.
    case average([CompositionExpr], weights: [Float]?)
    /// AdapterFusion attention over the members' outputs.
    case fuse([CompositionExpr])
    /// One forward pass, each member on its own copy of the batch, each with its own head.
    case parallel([CompositionExpr])

    /// Adapter names in order of appearance.
    public var adapterNames: [String] {
        switch self {
        case .adapter(let n): return [n]
        case .stack(let m), .average(let m, _), .fuse(let m), .parallel(let m): return m.flatMap(\.adapterNames)
        }
    }

    public var description: String {
        switch self {
        case .adapter(let n): return n
        case .stack(let m): return "stack(" + m.map(\.description).joined(separator: ", ") + ")"
        case .fuse(let m): return "fuse(" + m.map(\.description).joined(separator: ", ") + ")"
        case .parallel(let m): return "parallel(" + m.map(\.description).joined(separator: ", ") + ")"
        case .average(let m, let w):
            guard let w else { return "average(" + m.map(\.description).joined(separator: ", ") + ")" }
            return "average(" + zip(w, m).map { "\($0) * \($1)" }.joined(separator: ", ") + ")"
        }
    }
}

/// Fusion settings of a recipe.
public struct FusionOptions: Codable, Sendable, Equatable {
    /// With the value matrix V ("dynamic"); without it ("static").
    public var dynamic = true
    /// Softmax temperature when not annealed.
    public var temperature: Float = 1
    /// Anneal the temperature linearly from 50 to 1 over training.
    public var anneal = false
    /// Weight λ of the regulariser λ·Σ‖I − V‖².
    public var lambda: Float = 0.01
    /// A bias b_v after the value matrix. AdapterHub's value has none; fusions stored before
    /// this option existed have one (and read as true).
    public var valueBias = false
    /// Dropout on the attention scores before the softmax while training, with the encoder's
    /// attention dropout probability (as AdapterHub's BertFusion). Fusions stored before this
    /// option existed trained without it (and read as false).
    public var scoreDropout = true

    public init() {}

    enum CodingKeys: String, CodingKey {
        case dynamic, temperature, anneal, lambda
        case valueBias = "value_bias"
        case scoreDropout = "score_dropout"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dynamic = try c.decode(Bool.self, forKey: .dynamic)
        temperature = try c.decode(Float.self, forKey: .temperature)
        anneal = try c.decode(Bool.self, forKey: .anneal)
        lambda = try c.decode(Float.self, forKey: .lambda)
        valueBias = try c.decodeIfPresent(Bool.self, forKey: .valueBias) ?? true
        scoreDropout = try c.decodeIfPresent(Bool.self, forKey: .scoreDropout) ?? false
    }
}
