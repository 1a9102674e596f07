import Foundation
import KubeClient

/// A recursive-descent parser for the CEL grammar (github.com/google/cel-spec `doc/langdef.md`,
/// "Syntax": `Expr = ConditionalOr ["?" ConditionalOr ":" Expr]`, then `||`, `&&`, relations,
/// additions, multiplications, unary, member, primary) that checks types as it builds each
/// node, the way cel-go's checker would for the declared variables. Constructs outside the
/// evaluated subset are refused with their position.
struct CELParser {
    typealias Node = (expr: CELExpr, type: CELType)

    private let tokens: [CELToken]
    private var position = 0
    private let variables: [String: CELType]
    private let unsupportedVariables: Set<String>

    /// cel-spec "Reserved words" that may not be identifiers.
    private static let reserved: Set<String> = ["as", "break", "const", "continue", "else", "for", "function", "if", "import",
                                                "let", "loop", "package", "namespace", "return", "var", "void", "while"]
    /// The comprehension macros (cel-go `parser/macro.go`).
    private static let macros: Set<String> = ["all", "exists", "exists_one", "map", "filter"]

    init(tokens: [CELToken], variables: [String: CELType], unsupportedVariables: Set<String>) {
        self.tokens = tokens
        self.variables = variables
        self.unsupportedVariables = unsupportedVariables
    }

    /// Nesting of parentheses and unary operators (cel-go's parser refuses past 250, its
    /// default `MaxRecursionDepth`); bounds the parser's and evaluator's recursion.
    private var depth = 0
    private static let maxDepth = 250
    /// Tokens in one expression: a long `&&` chain is a deep tree too. Policies are short.
    private static let maxTokens = 2_000

    mutating func parseAll() throws(CELCompileError) -> Node {
        if tokens.count > Self.maxTokens {
            throw .unsupported("an expression of more than \(Self.maxTokens) tokens", at: 0)
        }
        let node = try expression()
        if peek.kind != .end { throw .invalid("Syntax error: extraneous input '\(text(peek))'", at: peek.offset) }
        return node
    }

    // MARK: grammar

    private mutating func expression() throws(CELCompileError) -> Node {
        let start = peek.offset
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth { throw .invalid("expression recursion limit exceeded: \(Self.maxDepth)", at: start) }
        let condition = try conditionalOr()
        guard accept("?") else { return condition }
        let yes = try conditionalOr()
        try expect(":")
        let no = try expression()
        guard condition.type.unifies(with: .bool), yes.type.unifies(with: no.type) else {
            throw noOverload("_?_:_", [condition.type, yes.type, no.type], at: start)
        }
        return (.conditional(condition.expr, yes.expr, no.expr), yes.type == no.type ? yes.type : .dyn)
    }

    private mutating func conditionalOr() throws(CELCompileError) -> Node {
        var left = try conditionalAnd()
        while case .symbol("||") = peek.kind {
            let at = advance().offset
            let right = try conditionalAnd()
            try requireBools("_||_", left.type, right.type, at: at)
            left = (.or(left.expr, right.expr), .bool)
        }
        return left
    }

    private mutating func conditionalAnd() throws(CELCompileError) -> Node {
        var left = try relation()
        while case .symbol("&&") = peek.kind {
            let at = advance().offset
            let right = try relation()
            try requireBools("_&&_", left.type, right.type, at: at)
            left = (.and(left.expr, right.expr), .bool)
        }
        return left
    }

    private mutating func relation() throws(CELCompileError) -> Node {
        var left = try addition()
        while true {
            let token = peek
            if case .identifier("in") = token.kind {
                advance()
                let right = try addition()
                let ok: Bool
                switch right.type {
                case .list(let element): ok = left.type.unifies(with: element)
                case .map: ok = left.type.unifies(with: .string)
                case .dyn: ok = true
                default: ok = false
                }
                if !ok { throw noOverload("@in", [left.type, right.type], at: token.offset) }
                left = (.membership(left.expr, in: right.expr), .bool)
                continue
            }
            guard case .symbol(let s) = token.kind, let op = CELCompareOperator(rawValue: s) else { return left }
            advance()
            let right = try addition()
            let ok: Bool
            switch op {
            case .equal, .notEqual:
                ok = left.type.unifies(with: right.type)
            default:
                let ordered: [CELType] = [.int, .string, .bool, .dyn]
                ok = ordered.contains(left.type) && ordered.contains(right.type) && left.type.unifies(with: right.type)
            }
            if !ok { throw noOverload(op.overload, [left.type, right.type], at: token.offset) }
            left = (.compare(op, left.expr, right.expr), .bool)
        }
    }

    private mutating func addition() throws(CELCompileError) -> Node {
        let left = try multiplication()
        if case .symbol(let s) = peek.kind, s == "+" || s == "-" {
            throw .unsupported("the operator '\(s)' is", at: peek.offset)
        }
        return left
    }

    private mutating func multiplication() throws(CELCompileError) -> Node {
        let left = try unary()
        if case .symbol(let s) = peek.kind, s == "*" || s == "/" || s == "%" {
            throw .unsupported("the operator '\(s)' is", at: peek.offset)
        }
        return left
    }

    private mutating func unary() throws(CELCompileError) -> Node {
        let token = peek
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth { throw .invalid("expression recursion limit exceeded: \(Self.maxDepth)", at: token.offset) }
        if accept("!") {
            let operand = try unary()
            guard operand.type.unifies(with: .bool) else { throw noOverload("!_", [operand.type], at: token.offset) }
            return (.not(operand.expr), .bool)
        }
        if accept("-") {
            // A negative int literal is one constant (so -9223372036854775808 is not an overflow).
            if case .int(let n) = peek.kind {
                advance()
                return try member((.literal(.int(-n)), .int))
            }
            let operand = try unary()
            guard operand.type.unifies(with: .int) else {
                if operand.type == .dyn { return (.negate(operand.expr), .dyn) }
                throw noOverload("-_", [operand.type], at: token.offset)
            }
            return (.negate(operand.expr), operand.type)
        }
        return try member(try primary())
    }

    private mutating func member(_ start: Node) throws(CELCompileError) -> Node {
        var node = start
        while true {
            let token = peek
            if accept(".") {
                if case .symbol("?") = peek.kind { throw .unsupported("optional field selection '.?' is", at: token.offset) }
                let (name, at) = try identifier()
                if case .symbol("(") = peek.kind, Self.macros.contains(name) {
                    // Before its arguments: they bind the macro's own variables.
                    throw .unsupported("the macro '\(name)' is", at: at)
                }
                if accept("(") {
                    let args = try arguments(closing: ")")
                    node = try receiverCall(name, receiver: node, args: args, at: at)
                } else {
                    node = (.select(node.expr, field: name), try fieldType(node.type, name, at: at))
                }
            } else if accept("[") {
                if case .symbol("?") = peek.kind { throw .unsupported("optional indexing '[?' is", at: token.offset) }
                let index = try expression()
                try expect("]")
                node = (.index(node.expr, index.expr), try indexType(node.type, index.type, at: token.offset))
            } else if case .symbol("{") = token.kind {
                throw .unsupported("message construction is", at: token.offset)
            } else {
                return node
            }
        }
    }

    private mutating func primary() throws(CELCompileError) -> Node {
        let token = advance()
        switch token.kind {
        case .int(let n): return (.literal(.int(n)), .int)
        case .string(let s): return (.literal(.string(s)), .string)
        case .identifier(let name):
            switch name {
            case "true": return (.literal(.bool(true)), .bool)
            case "false": return (.literal(.bool(false)), .bool)
            case "null": return (.literal(.null), .null)
            default: break
            }
            if Self.reserved.contains(name) || name == "in" {
                throw .invalid("Syntax error: reserved identifier: \(name)", at: token.offset)
            }
            if case .symbol("(") = peek.kind, !["has", "size", "matches"].contains(name) {
                throw .unsupported(Self.macros.contains(name) ? "the macro '\(name)' is" : "the function '\(name)' is", at: token.offset)
            }
            if accept("(") {
                return try globalCall(name, args: try arguments(closing: ")"), at: token.offset)
            }
            if let type = variables[name] { return (.identifier(name), type) }
            if unsupportedVariables.contains(name) { throw .unsupported("the variable '\(name)' is", at: token.offset) }
            throw .invalid("undeclared reference to '\(name)' (in container '')", at: token.offset)
        case .symbol("("):
            let inner = try expression()
            try expect(")")
            return inner
        case .symbol("["):
            let items = try arguments(closing: "]")
            var element: CELType?
            for item in items where item.type != .dyn {
                if let e = element, e != item.type {
                    // cel-go's HomogeneousAggregateLiterals, on in Kubernetes' CEL environment.
                    throw .invalid("expected type '\(e)' but found '\(item.type)'", at: token.offset)
                }
                element = item.type
            }
            return (.list(items.map(\.expr)), .list(element ?? .dyn))
        case .symbol("{"):
            throw .unsupported("map literals are", at: token.offset)
        case .symbol("."):
            throw .unsupported("leading-dot (root namespace) identifiers are", at: token.offset)
        case .end:
            throw .invalid("Syntax error: mismatched input '<EOF>'", at: token.offset)
        default:
            throw .invalid("Syntax error: mismatched input '\(text(token))'", at: token.offset)
        }
    }

    /// Comma-separated expressions up to `closing` (a trailing comma is allowed in lists).
    private mutating func arguments(closing: String) throws(CELCompileError) -> [Node] {
        var out: [Node] = []
        if accept(closing) { return out }
        while true {
            out.append(try expression())
            if accept(closing) { return out }
            try expect(",")
            if closing == "]", accept(closing) { return out }
        }
    }

    // MARK: functions

    private func globalCall(_ name: String, args: [Node], at offset: Int) throws(CELCompileError) -> Node {
        switch name {
        case "has":
            guard args.count == 1, case .select(let operand, let field) = args[0].expr else {
                throw .invalid("invalid argument to has() macro", at: offset)
            }
            return (.has(operand, field: field), .bool)
        case "size":
            guard args.count == 1 else { throw noOverload("size", args.map(\.type), at: offset) }
            return try sizeCall(args[0], at: offset)
        case "matches":
            guard args.count == 2 else { throw noOverload("matches", args.map(\.type), at: offset) }
            return try stringCall(.matches, receiver: args[0], argument: args[1], at: offset)
        default:
            if Self.macros.contains(name) { throw .unsupported("the macro '\(name)' is", at: offset) }
            throw .unsupported("the function '\(name)' is", at: offset)
        }
    }

    private func receiverCall(_ name: String, receiver: Node, args: [Node], at offset: Int) throws(CELCompileError) -> Node {
        if Self.macros.contains(name) { throw .unsupported("the macro '\(name)' is", at: offset) }
        guard let function = CELFunction(rawValue: name) else { throw .unsupported("the function '\(name)' is", at: offset) }
        switch function {
        case .size:
            guard args.isEmpty else { throw noOverload("size", [receiver.type] + args.map(\.type), at: offset) }
            return try sizeCall(receiver, at: offset)
        case .startsWith, .endsWith, .contains, .matches:
            guard args.count == 1 else { throw noOverload(name, [receiver.type] + args.map(\.type), at: offset) }
            return try stringCall(function, receiver: receiver, argument: args[0], at: offset)
        }
    }

    private func sizeCall(_ operand: Node, at offset: Int) throws(CELCompileError) -> Node {
        switch operand.type {
        case .string, .list, .map, .dyn: return (.call(.size, [operand.expr]), .int)
        default: throw noOverload("size", [operand.type], at: offset)
        }
    }

    private func stringCall(_ function: CELFunction, receiver: Node, argument: Node, at offset: Int) throws(CELCompileError) -> Node {
        guard receiver.type.unifies(with: .string), argument.type.unifies(with: .string) else {
            throw noOverload(function.rawValue, [receiver.type, argument.type], at: offset)
        }
        if function == .matches, case .literal(.string(let pattern)) = argument.expr, (try? NSRegularExpression(pattern: pattern)) == nil {
            throw .invalid("invalid regular expression: \(pattern)", at: offset)
        }
        return (.call(function, [receiver.expr, argument.expr]), .bool)
    }

    // MARK: types

    private func fieldType(_ base: CELType, _ field: String, at offset: Int) throws(CELCompileError) -> CELType {
        switch base {
        case .dyn: return .dyn
        case .map(let value): return value
        case .object(_, let fields):
            guard let t = fields[field] else { throw .invalid("undefined field '\(field)'", at: offset) }
            return t
        default: throw .invalid("type '\(base)' does not support field selection", at: offset)
        }
    }

    private func indexType(_ base: CELType, _ index: CELType, at offset: Int) throws(CELCompileError) -> CELType {
        switch base {
        case .dyn: return .dyn
        case .list(let element) where index.unifies(with: .int): return element
        case .map(let value) where index.unifies(with: .string): return value
        case .object where index.unifies(with: .string):
            // The field is not known to the checker here (only a literal key names it).
            return .dyn
        default: throw noOverload("_[_]", [base, index], at: offset)
        }
    }

    private func requireBools(_ overload: String, _ a: CELType, _ b: CELType, at offset: Int) throws(CELCompileError) {
        guard a.unifies(with: .bool), b.unifies(with: .bool) else { throw noOverload(overload, [a, b], at: offset) }
    }

    private func noOverload(_ name: String, _ types: [CELType], at offset: Int) -> CELCompileError {
        .invalid("found no matching overload for '\(name)' applied to '(\(types.map(\.description).joined(separator: ", ")))'", at: offset)
    }

    // MARK: tokens

    private var peek: CELToken { tokens[position] }

    @discardableResult
    private mutating func advance() -> CELToken {
        let t = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return t
    }

    private mutating func accept(_ symbol: String) -> Bool {
        if case .symbol(symbol) = peek.kind { advance(); return true }
        return false
    }

    private mutating func expect(_ symbol: String) throws(CELCompileError) {
        guard accept(symbol) else {
            throw .invalid("Syntax error: mismatched input '\(text(peek))' expecting '\(symbol)'", at: peek.offset)
        }
    }

    private mutating func identifier() throws(CELCompileError) -> (String, Int) {
        let t = advance()
        guard case .identifier(let name) = t.kind else {
            throw .invalid("Syntax error: mismatched input '\(text(t))' expecting IDENTIFIER", at: t.offset)
        }
        return (name, t.offset)
    }

    private func text(_ t: CELToken) -> String {
        switch t.kind {
        case .identifier(let s), .symbol(let s): s
        case .int(let n): String(n)
        case .string(let s): "'\(s)'"
        case .end: "<EOF>"
        }
    }
}
