/// Where inside a post-LN transformer layer a hook runs: on a sublayer's output projection,
/// after its dropout and before the residual sum and LayerNorm.
public enum AdapterSite: Int, Sendable, CaseIterable, Codable {
    /// After the attention output projection (Houlsby's first adapter).
    case attention
    /// After the FFN output projection (Pfeiffer's single adapter, Houlsby's second).
    case output

    public var storageName: String { self == .attention ? "attention_adapter" : "output_adapter" }
}

/// A place a hook can act: (layer, site). The only place its dense index and its stored path
/// prefix are computed.
public struct HookSite: Hashable, Sendable, Comparable {
    public let layer: Int
    public let site: AdapterSite

    public init(_ layer: Int, _ site: AdapterSite) { self.layer = layer; self.site = site }

    /// Dense index, in encoder order: layer 0 attention, layer 0 output, layer 1 attention, …
    public var index: Int { layer * AdapterSite.allCases.count + site.rawValue }

    /// `layer_03`: the stored group of a layer.
    public var layerName: String { "layer_" + (layer < 10 ? "0" : "") + String(layer) }

    /// An adapter module's stored prefix: `layer_03/output_adapter/`.
    public var adapterPrefix: String { layerName + "/" + site.storageName + "/" }

    /// A fusion layer's stored prefix: `layer_03/` at the output, `layer_03/attention/` at the attention site.
    public var fusionPrefix: String { layerName + "/" + (site == .output ? "" : "attention/") }

    public static func < (a: HookSite, b: HookSite) -> Bool { a.index < b.index }
}

/// What a hook reads at one (layer, site), all [n, H]: the sublayer's output h (after its
/// dropout, before the residual sum), the sublayer's input x (the residual; a parallel adapter
/// reads it) and, when the hook asks for it, z = LN(h + x), the layer's own LayerNorm applied
/// to the residual sum (AdapterHub's `original_ln_before`, the input of a seq_bn / Pfeiffer
/// adapter and of its fusion query).
public struct HookInput {
    public let h: UnsafePointer<Float>
    public let normed: UnsafePointer<Float>?
    public let x: UnsafePointer<Float>?

    public init(h: UnsafePointer<Float>, normed: UnsafePointer<Float>? = nil, x: UnsafePointer<Float>? = nil) {
        self.h = h; self.normed = normed; self.x = x
    }

    /// The rows from `offset` on (a slice of the batch).
    func advanced(by offset: Int) -> HookInput { HookInput(h: h + offset, normed: normed.map { $0 + offset }, x: x.map { $0 + offset }) }

    /// The same input with another h (a stack's next member).
    func with(h: UnsafePointer<Float>) -> HookInput { HookInput(h: h, normed: normed, x: x) }
}

/// Where a hook's backward pass adds its input gradients: ∂L/∂h, ∂L/∂x (the residual, for
/// hooks that read x) and, when the hook read z, ∂L/∂z (the encoder carries it through the
/// LayerNorm to h and the residual).
public struct HookGradient {
    public let dh: UnsafeMutablePointer<Float>
    public let dnormed: UnsafeMutablePointer<Float>?
    public let dx: UnsafeMutablePointer<Float>?

    public init(dh: UnsafeMutablePointer<Float>, dnormed: UnsafeMutablePointer<Float>? = nil, dx: UnsafeMutablePointer<Float>? = nil) {
        self.dh = dh; self.dnormed = dnormed; self.dx = dx
    }

    func advanced(by offset: Int) -> HookGradient {
        HookGradient(dh: dh + offset, dnormed: dnormed.map { $0 + offset }, dx: dx.map { $0 + offset })
    }

    /// The same gradient with another dh (a stack's inner member).
    func with(dh: UnsafeMutablePointer<Float>) -> HookGradient { HookGradient(dh: dh, dnormed: dnormed, dx: dx) }
}

/// Frozen tensors inside a layer that a method may change in place: LoRA adds ΔW·x to a
/// projection, IA³ scales one, BitFit adds a bias delta. Each is named by what it holds.
public enum LayerPoint: Int, Sendable, CaseIterable {
    /// [n, 3H] = x·Wqkvᵀ + b: the query, key and value projections side by side (input: the layer input).
    case qkv
    /// [n, H] = ctx·Woᵀ + bo, before its dropout (input: the attention context).
    case attnProj
    /// [n, H] the first LayerNorm's output, the FFN's input (no input).
    case attnNorm
    /// [n, F] = attnOut·W1ᵀ, before the bias b1 and the GELU (input: attnOut).
    case ffnPre
    /// [n, F] = GELU(ffnPre + b1) (no input).
    case ffnAct
    /// [n, H] = ffnAct·W2ᵀ + b2, before its dropout (input: ffnAct).
    case ffnProj
    /// [n, H] the layer's output, after its LayerNorm (no input).
    case outNorm

    /// Values per token of the point's input (the projection's; the same as the output's where there is none).
    public func inputWidth(hidden H: Int, intermediate F: Int) -> Int { self == .ffnProj ? F : H }

    /// Values per token.
    public func width(hidden H: Int, intermediate F: Int) -> Int {
        switch self {
        case .qkv: return 3 * H
        case .ffnPre, .ffnAct: return F
        default: return H
        }
    }
}

/// What a hook may do inside the encoder comes in facets, one protocol each, with no default
/// no-ops: a hook conforms to the facets it implements, and the encoder calls each facet only
/// on a hook that has it.
///
/// - `LayerHook` (every hook): replaces a sublayer output h by f(h, z) where it acts.
/// - `ProjectionHook`: changes frozen tensors inside a layer in place (LoRA, IA³, BitFit).
/// - `PrefixHook`: prepends key and value vectors to a layer's attention (prefix tuning).
/// - `PromptHook`: inserts soft tokens into the input (prompt tuning).
/// - `PassHook`: hears when a pass begins and its backward ends (derived per-pass state).
/// - `LayerReplacingHook`: computes whole layers itself (a fusion over members that change more
///   than sublayer outputs: `LayerFuseNode`).
///
/// A composition node conforms to the facets it can compose; a node over sublayer outputs only
/// (`FuseNode`, `AverageNode`) refuses, at construction, a member with more.
///
/// The sublayer facet: the encoder calls `forward` during its forward pass and, in the same
/// layer order reversed, `backward`, which must add ∂L/∂h (and ∂L/∂z) to `grad` and accumulate
/// the hook's own parameter gradients.
public protocol LayerHook: AnyObject {
    /// True when the hook acts at this layer and site.
    func acts(layer: Int, site: AdapterSite) -> Bool
    /// True when the hook reads z = LN(h + x) at this layer and site (the encoder computes it only then).
    func readsNormalized(layer: Int, site: AdapterSite) -> Bool
    /// out[n, H] = f(h, z). Keeps what `backward` needs in `cache`.
    func forward(layer: Int, site: AdapterSite, input: HookInput, out: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache)
    /// grad.dh[n, H] += ∂L/∂h (and grad.dnormed += ∂L/∂z) given dout = ∂L/∂out, reading what the
    /// forward pass kept in `cache`.
    func backward(layer: Int, site: AdapterSite, dout: UnsafePointer<Float>, grad: HookGradient, n: Int, cache: HookCache)
}

/// Changes frozen tensors inside a layer in place (LoRA adds ΔW·x, IA³ scales, BitFit shifts).
public protocol ProjectionHook: LayerHook {
    /// True when the hook changes `point` of layer `layer`.
    func changes(layer: Int, point: LayerPoint) -> Bool
    /// y[n, width] = g(y, x) in place, x [n, in] being the point's input (nil for points without one).
    func forward(layer: Int, point: LayerPoint, x: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, n: Int, training: Bool, cache: HookCache)
    /// Given dy = ∂L/∂(changed y), turns dy into ∂L/∂(y before the change) in place and adds
    /// ∂L/∂x to `dx` (when the point has an input); accumulates the hook's parameter gradients.
    func backward(layer: Int, point: LayerPoint, dy: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?, n: Int, cache: HookCache)
}

/// Prepends key and value vectors to a layer's attention (prefix tuning).
public protocol PrefixHook: LayerHook {
    /// How many key and value vectors the hook prepends to layer `layer`'s attention.
    func prefixLength(layer: Int) -> Int
    /// Those vectors for this pass, given the layer input x [tokens, H] of `batch` (a gated
    /// prefix reads it). They must stay valid until the backward pass.
    func prefix(layer: Int, x: UnsafePointer<Float>, batch: TokenBatch, training: Bool, cache: HookCache) -> AttentionPrefix?
    /// Receives ∂L/∂(the prefix of this layer), laid out like it; adds ∂L/∂x to `dx`.
    func prefixBackward(
        layer: Int, dkeys: UnsafePointer<Float>, dvalues: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, batch: TokenBatch,
        cache: HookCache)
}

/// Inserts soft tokens after each sequence's first token (prompt tuning).
public protocol PromptHook: LayerHook {
    var promptLength: Int { get }
    /// out[promptLength, H]: the soft tokens' input embeddings (before positions and LayerNorm).
    func promptEmbeddings(cache: HookCache) -> UnsafePointer<Float>?
    /// Receives ∂L/∂(prompt embeddings) summed over the batch [promptLength, H].
    func promptBackward(_ d: UnsafePointer<Float>, cache: HookCache)
}

/// Hears the start of every encoder pass and the end of its backward.
public protocol PassHook: LayerHook {
    /// Called at the start of every encoder pass with its batch (a hook with state derived from
    /// its parameters — prefix tuning's re-parameterisation — computes it here).
    func beginPass(batch: TokenBatch, training: Bool, cache: HookCache)
    /// Called once the encoder's backward pass is done (gradients of such derived state go back
    /// to the parameters here).
    func endBackward(cache: HookCache)
}

/// Computes whole layers itself (a fusion over members that change more than a sublayer's
/// output: see `LayerFuseNode`).
public protocol LayerReplacingHook: LayerHook {
    /// True when the hook computes layer `layer` as a whole.
    func replacesLayer(_ layer: Int) -> Bool
    /// The attention prefix the encoder's buffers must hold for layer `layer` (its members').
    func prefixCapacity(layer: Int) -> Int
    /// output = the layer computed by the hook (with `run` the encoder's own layer function).
    func layerForward(_ layer: Int, input: Tensor, output: Tensor, run: LayerRunner, training: Bool, cache: HookCache)
    /// dInput += ∂L/∂input given dOutput = ∂L/∂output (which it may overwrite).
    func layerBackward(_ layer: Int, dOutput: Tensor, dInput: Tensor, run: LayerRunner, cache: HookCache)
}

/// A prefix of key and value vectors for one layer's attention: `count` rows of [H] each,
/// shared by every sequence or (`perSequence`) one block of `count` rows per sequence.
public struct AttentionPrefix {
    public let keys: UnsafePointer<Float>
    public let values: UnsafePointer<Float>
    public let count: Int
    /// Values differ per sequence (a gated prefix): values + s·count·H is sequence s's block.
    public let valuesPerSequence: Bool

    public init(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int, valuesPerSequence: Bool = false) {
        self.keys = keys; self.values = values; self.count = count; self.valuesPerSequence = valuesPerSequence
    }
}

extension LayerHook {
    /// Queries across facets (what a hook without the facet answers: no).
    func changesPoint(layer l: Int, point p: LayerPoint) -> Bool { (self as? ProjectionHook)?.changes(layer: l, point: p) ?? false }
    func prefixCount(layer l: Int) -> Int { (self as? PrefixHook)?.prefixLength(layer: l) ?? 0 }
    var promptCount: Int { (self as? PromptHook)?.promptLength ?? 0 }
    func replaces(layer l: Int) -> Bool { (self as? LayerReplacingHook)?.replacesLayer(l) ?? false }

    /// True when the hook changes layer `l` beyond its sublayer outputs: a projection or
    /// LayerNorm output, the attention's prefix, or the whole layer.
    func changesInside(layer l: Int) -> Bool {
        replaces(layer: l) || prefixCount(layer: l) > 0 || LayerPoint.allCases.contains { changesPoint(layer: l, point: $0) }
    }

    /// Prefix vectors the attention buffers must hold at layer `l`: the hook's own prefix, or
    /// what a layer-replacing hook's members need.
    func prefixNeed(layer l: Int) -> Int { max(prefixCount(layer: l), (self as? LayerReplacingHook)?.prefixCapacity(layer: l) ?? 0) }

    /// The most prefix vectors any of `layers` layers gets (sizes the attention buffers).
    func maxPrefixLength(layers: Int) -> Int { (0..<layers).map { prefixNeed(layer: $0) }.max() ?? 0 }
}

/// How far down the encoder's backward pass must go for a hook: nothing below it is computed.
enum BackwardStop: Equatable {
    /// Through layer `l`'s FFN sublayer hook only.
    case outputSite(Int)
    /// Through layer `l`'s attention sublayer hook.
    case attentionSite(Int)
    /// Through the whole of layer `l`, down to its input.
    case layerInput(Int)
    /// Through the embeddings (prompt tuning).
    case embeddings
}

extension LayerHook {
    /// The lowest place the hook acts at, in forward order; nil when it never acts.
    func backwardStop(layers: Int) -> BackwardStop? {
        if promptCount > 0 { return .embeddings }
        for l in 0..<layers {
            if changesInside(layer: l) { return .layerInput(l) }
            if acts(layer: l, site: .attention) { return .attentionSite(l) }
            if acts(layer: l, site: .output) { return .outputSite(l) }
        }
        return nil
    }
}
