/// A trainable tensor with its gradient, under the name it is stored as
/// (an HDF5 dataset path relative to its adapter or head group).
public final class Parameter {
    public let name: String
    public let value: Tensor
    public let grad: Tensor
    /// Whether AdamW applies weight decay (false for biases and LayerNorm parameters).
    public let decay: Bool
    /// Multiplies the optimizer's learning rate for this tensor (1 unless a method needs a
    /// slower part: prefix tuning's re-parameterisation MLP).
    public var learningRateScale: Float = 1

    public init(_ name: String, _ value: Tensor, decay: Bool) {
        self.name = name
        self.value = value
        self.grad = Tensor(zeros: value.shape)
        self.decay = decay
    }
}

extension Tensor {
    /// Grows a scratch buffer to at least `count` elements (contents are not kept).
    static func ensure(_ t: inout Tensor, _ count: Int) {
        if t.count < count { t = Tensor(zeros: [count]) }
    }
}
