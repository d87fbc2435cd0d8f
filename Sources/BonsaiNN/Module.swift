// The parameter tree. A module's stored properties spell the Hugging Face checkpoint keys:
// `encoder.layer.3.attention.self.query.weight` is the property path encoder -> layer[3] -> attention ->
// self -> query -> weight. One walk over the tree drives loading, saving, freezing and optimizers.
import BonsaiEngine

/// A layer whose weight may be held in a GGUF block format instead of an fp32 tensor.
public protocol PackedWeightHolder: AnyObject {
  var packedWeight: PackedMatrix? { get }
}

/// A layer or model: a class whose stored `Tensor`, `Module` and `[Module]` properties form its parameters.
open class Module {
  public init() {}

  /// Property names that differ from the checkpoint key (e.g. `selfAttention` -> `self`).
  open var keyOverrides: [String: String] { [:] }

  /// True while training (dropout active).
  public private(set) var isTraining = false

  /// All parameters with their dotted checkpoint keys, in declaration order.
  public func namedParameters(prefix: String = "") -> [(key: String, tensor: Tensor)] {
    var out: [(String, Tensor)] = []
    collect(prefix: prefix, into: &out)
    return out
  }

  /// The parameters as a dictionary keyed by checkpoint key.
  public func parameterDictionary() -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: namedParameters().map { ($0.key, $0.tensor) })
  }

  /// The parameters that are being trained.
  public var trainableParameters: [Tensor] { namedParameters().map(\.tensor).filter(\.requiresGrad) }

  /// Number of scalar parameters (packed weights counted by their elements).
  public var parameterCount: Int {
    namedParameters().reduce(0) { $0 + $1.tensor.count } + namedPackedWeights().reduce(0) { $0 + $1.matrix.rows * $1.matrix.columns }
  }

  /// Every module with its dotted key ("" for this one), parents first.
  public func namedModules() -> [(key: String, module: Module)] {
    var out: [(String, Module)] = []
    walkModules(prefix: "") { out.append(($0, $1)) }
    return out
  }

  /// The weights kept in a block format (`PackedWeightHolder`), keyed like their parameter ("....weight").
  public func namedPackedWeights() -> [(key: String, matrix: PackedMatrix)] {
    namedModules().compactMap { key, m in
      (m as? PackedWeightHolder)?.packedWeight.map { (key.isEmpty ? "weight" : key + ".weight", $0) }
    }
  }

  /// Every parameter as its key, its real shape (a packed weight's rows x columns, not its placeholder's)
  /// and a maker of its fp32 values (a packed weight dequantised only when called), so that a writer can
  /// make, write and drop one weight at a time.
  public func namedParameterMakers() -> [(key: String, shape: [Int], make: () -> Tensor)] {
    let packed = Dictionary(uniqueKeysWithValues: namedPackedWeights())
    return namedParameters().map { key, t in
      guard let p = packed[key] else { return (key, t.shape, { t }) }
      return (key, [p.rows, p.columns], { p.dequantized() })
    }
  }

  /// `namedParameters()` with every packed weight's placeholder replaced by its fp32 values (allocates
  /// every dequantised copy at once; writers use `namedParameterMakers()`).
  public func materializedParameters() -> [(key: String, tensor: Tensor)] {
    namedParameterMakers().map { ($0.key, $0.make()) }
  }

  /// Switches dropout on (training) or off (evaluation) in this module and all sub-modules.
  public func train(_ on: Bool = true) {
    isTraining = on
    forEachChild { $0.train(on) }
  }

  /// Marks every parameter trainable or frozen.
  public func setTrainable(_ on: Bool) { for (_, t) in namedParameters() { t.requiringGrad(on) } }

  private func forEachChild(_ body: (Module) -> Void) {
    var mirror: Mirror? = Mirror(reflecting: self)
    while let m = mirror {
      for child in m.children {
        if let sub = child.value as? Module { body(sub) }
        else if let subs = child.value as? [Module] { subs.forEach(body) }
        else if let opt = child.value as? Module? , let sub = opt { body(sub) }
      }
      mirror = m.superclassMirror
    }
  }

  private func collect(prefix: String, into out: inout [(String, Tensor)]) {
    forEachNamedChild(prefix: prefix) { key, value in
      switch value {
      case let t as Tensor: out.append((key, t))
      case let sub as Module: sub.collect(prefix: key, into: &out)
      case let subs as [Module]: for (i, s) in subs.enumerated() { s.collect(prefix: key + ".\(i)", into: &out) }
      case let opt as Tensor?: if let t = opt { out.append((key, t)) }
      case let opt as Module?: if let s = opt { s.collect(prefix: key, into: &out) }
      default: break
      }
    }
  }

  /// Calls `body` with this module and every sub-module, each with its dotted key.
  func walkModules(prefix: String, _ body: (String, Module) -> Void) {
    body(prefix, self)
    forEachNamedChild(prefix: prefix) { key, value in
      switch value {
      case let sub as Module: sub.walkModules(prefix: key, body)
      case let subs as [Module]: for (i, s) in subs.enumerated() { s.walkModules(prefix: key + ".\(i)", body) }
      case let opt as Module?: if let s = opt { s.walkModules(prefix: key, body) }
      default: break
      }
    }
  }

  /// Stored properties (base classes first, `_`-prefixed ones skipped) with their checkpoint keys.
  private func forEachNamedChild(prefix: String, _ body: (String, Any) -> Void) {
    var mirrors: [Mirror] = []
    var mirror: Mirror? = Mirror(reflecting: self)
    while let m = mirror { mirrors.insert(m, at: 0); mirror = m.superclassMirror }
    for m in mirrors {
      for child in m.children {
        guard let label = child.label, !label.hasPrefix("_") else { continue }
        let name = keyOverrides[label] ?? label
        body(prefix.isEmpty ? name : prefix + "." + name, child.value)
      }
    }
  }
}
