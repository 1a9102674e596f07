import KubeClient

/// The part of CEL that admission policies need, over `JSONValue`: literals (int, string, bool,
/// null, lists), variables, field selection, indexing, `== != < <= > >=`, `in`, `&& || !`,
/// unary `-`, `?:`, the `has()` macro and the string functions `startsWith`, `endsWith`,
/// `contains`, `matches` and `size`. Everything else is refused when the expression is
/// compiled (`CELCompileError.unsupported`), so nothing outside the subset is ever evaluated
/// with other semantics than cel-go's (github.com/google/cel-spec `doc/langdef.md`).
/// Lexer, parser and evaluator are `CELLexer`, `CELParser`, `CELEvaluator`.
struct CELProgram: Sendable {
    let source: String
    let root: CELExpr
    /// The type the checker found for the whole expression.
    let type: CELType

    /// Parses and checks `source` against the declared variables. With `expecting`, the result
    /// type must be exactly that type, as k8s.io/apiserver `pkg/admission/plugin/cel/compile.go`
    /// `CompileCELExpression` requires (`must evaluate to bool but got dyn`).
    static func compile(_ source: String, variables: [String: CELType], unsupportedVariables: Set<String> = [], expecting: CELType? = nil) throws(CELCompileError) -> CELProgram {
        var parser = CELParser(tokens: try CELLexer.tokenize(source), variables: variables, unsupportedVariables: unsupportedVariables)
        let (root, type) = try parser.parseAll()
        if let expecting, type != expecting {
            throw CELCompileError(kind: .wrongType, message: "must evaluate to \(expecting) but got \(type)", offset: nil)
        }
        return CELProgram(source: source, root: root, type: type)
    }

    func evaluate(_ activation: [String: JSONValue]) throws(CELEvalError) -> JSONValue {
        try CELEvaluator(activation: activation).eval(root)
    }
}

/// Why an expression was not compiled. `invalid` and `wrongType` are errors cel-go reports
/// too; `unsupported` is a construct valid in CEL that the devcluster does not evaluate.
struct CELCompileError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable { case invalid, wrongType, unsupported }
    var kind: Kind
    var message: String
    /// Character offset in the expression (0-based), when known.
    var offset: Int?

    static func invalid(_ message: String, at offset: Int) -> CELCompileError { .init(kind: .invalid, message: message, offset: offset) }
    static func unsupported(_ what: String, at offset: Int) -> CELCompileError {
        .init(kind: .unsupported, message: "\(what) not supported by the devcluster's CEL subset", offset: offset)
    }

    /// cel-go's `Issues.String()` shape (`ERROR: <input>:1:5: …`) for errors a real server
    /// reports as well; a plain statement for what only the devcluster cannot do.
    var description: String {
        let position = offset.map { "<input>:1:\($0 + 1): " } ?? ""
        switch kind {
        case .invalid: return "compilation failed: ERROR: \(position)\(message)"
        case .wrongType: return message
        case .unsupported: return "the devcluster cannot evaluate this expression: \(position)\(message)"
        }
    }
}

/// A runtime error, worded as cel-go words it (`no such key: name`, `no such overload`).
struct CELEvalError: Error, Sendable, Equatable, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The checker's view of a value: concrete where the expression says so (literals, the
/// declared `request` object, the results of operators), `dyn` for the admitted objects.
indirect enum CELType: Sendable, Equatable, CustomStringConvertible {
    case bool, int, string, null, dyn
    case list(CELType)
    case map(CELType)
    /// A declared object type with its fields (apiserver `BuildRequestType`, `BuildNamespaceType`).
    case object(name: String, fields: [String: CELType])

    var description: String {
        switch self {
        case .bool: "bool"
        case .int: "int"
        case .string: "string"
        case .null: "null_type"
        case .dyn: "dyn"
        case .list(let e): "list(\(e))"
        case .map(let v): "map(string, \(v))"
        case .object(let name, _): name
        }
    }

    /// Whether a value of this type may meet `other` in one operator (either side `dyn`).
    func unifies(with other: CELType) -> Bool {
        if self == .dyn || other == .dyn { return true }
        switch (self, other) {
        case (.list(let a), .list(let b)): return a.unifies(with: b)
        case (.map(let a), .map(let b)): return a.unifies(with: b)
        case (.object(let a, _), .object(let b, _)): return a == b
        default: return self == other
        }
    }
}

/// The parsed expression. Receiver-style calls keep the receiver as the first argument.
indirect enum CELExpr: Sendable, Equatable {
    case literal(JSONValue)
    case identifier(String)
    case select(CELExpr, field: String)
    case index(CELExpr, CELExpr)
    /// `has(operand.field)`.
    case has(CELExpr, field: String)
    case list([CELExpr])
    case not(CELExpr)
    case negate(CELExpr)
    case compare(CELCompareOperator, CELExpr, CELExpr)
    case membership(CELExpr, in: CELExpr)
    case and(CELExpr, CELExpr)
    case or(CELExpr, CELExpr)
    case conditional(CELExpr, CELExpr, CELExpr)
    case call(CELFunction, [CELExpr])
}

enum CELCompareOperator: String, Sendable, Equatable {
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    /// cel-go's overload name, for messages (`_==_`).
    var overload: String { "_\(rawValue)_" }
}

enum CELFunction: String, Sendable, Equatable {
    case startsWith, endsWith, contains, matches, size
}
