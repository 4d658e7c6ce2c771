/// What hooks keep from a forward pass for its backward pass, and their scratch: owned by the
/// pass's `EncoderWorkspace`, not by the modules. So a module (an adapter, a fusion layer) holds
/// only its parameters and can serve several workspaces — two predictors sharing an adapter, or
/// passes on different threads — and the memory goes with the workspace.
///
/// A tensor is keyed by its owner (the module object) and one of the owner's named slots
/// (`CacheSlot`); it grows when a larger batch needs more and is reused by later passes.
public final class HookCache {
    private struct Key: Hashable {
        let owner: ObjectIdentifier
        let slot: AnyHashable
    }
    private var tensors: [Key: Tensor] = [:]
    private var masks: [Key: Mask] = [:]
    /// The dropout of the current training pass (nil in inference), for hooks that drop out
    /// too (fusion scores); set by the encoder at the start of each pass.
    public var dropout: DropoutState?

    public init() {}

    /// A tensor of at least `count` elements for (`owner`, `slot`). Its contents are what the
    /// owner last wrote there in this cache.
    public func tensor<S: CacheSlot>(_ owner: AnyObject, _ slot: S, count: Int) -> Tensor {
        let key = Key(owner: ObjectIdentifier(owner), slot: slot)
        if let t = tensors[key], t.count >= count { return t }
        let t = Tensor(zeros: [max(count, 1)])
        tensors[key] = t
        return t
    }

    /// A dropout mask of at least `count` elements for (`owner`, `slot`).
    public func mask<S: CacheSlot>(_ owner: AnyObject, _ slot: S, count: Int) -> Mask {
        let key = Key(owner: ObjectIdentifier(owner), slot: slot)
        if let m = masks[key], m.count >= count { return m }
        let m = Mask(count: max(count, 1))
        masks[key] = m
        return m
    }
}

/// A named buffer of one owner in a `HookCache`. Each owner declares its slots as an enum next
/// to the code that uses them (`enum Slot: CacheSlot { case keys(layer: Int), … }`), so every
/// buffer says what it holds and two uses never share a number by accident; owners are
/// distinct objects, so slot names need only be unique within their owner.
public protocol CacheSlot: Hashable, Sendable {}
