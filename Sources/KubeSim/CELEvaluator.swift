import Foundation
import KubeClient

/// Evaluates a checked `CELExpr` over JSON values with cel-go's runtime semantics
/// (github.com/google/cel-spec `doc/langdef.md`, "Evaluation" and "Logical operators"):
/// heterogeneous `==` is false, a missing key is `no such key: X`, a value of the wrong
/// kind is `no such overload`, and `&&`/`||` are commutative in errors (`false && error`
/// is false, `true || error` is true).
struct CELEvaluator {
    /// Values of the declared variables; a declared variable that is absent is null.
    let activation: [String: JSONValue]

    func eval(_ e: CELExpr) throws(CELEvalError) -> JSONValue {
        switch e {
        case .literal(let v):
            return v
        case .identifier(let name):
            return activation[name] ?? .null
        case .select(let operand, let field):
            return try Self.select(try eval(operand), field)
        case .index(let operand, let index):
            return try Self.index(try eval(operand), try eval(index))
        case .has(let operand, let field):
            // The operand is evaluated as usual: only the last field is tested for presence.
            guard case .object(let o) = try eval(operand) else { throw Self.noOverload }
            return .bool(o[field] != nil)
        case .list(let items):
            var out: [JSONValue] = []
            for item in items { out.append(try eval(item)) }
            return .array(out)
        case .not(let operand):
            guard case .bool(let b) = try eval(operand) else { throw Self.noOverload }
            return .bool(!b)
        case .negate(let operand):
            guard case .int(let n) = try eval(operand) else { throw Self.noOverload }
            guard n != .min else { throw CELEvalError(message: "integer overflow") }
            return .int(-n)
        case .compare(let op, let a, let b):
            return .bool(try Self.compare(op, try eval(a), try eval(b)))
        case .membership(let element, let container):
            return .bool(try Self.contains(try eval(container), try eval(element)))
        case .and(let a, let b):
            return try logical(a, b, absorbing: false)
        case .or(let a, let b):
            return try logical(a, b, absorbing: true)
        case .conditional(let condition, let yes, let no):
            guard case .bool(let c) = try eval(condition) else { throw Self.noOverload }
            return try eval(c ? yes : no)
        case .call(let function, let args):
            var values: [JSONValue] = []
            for arg in args { values.append(try eval(arg)) }
            return try Self.call(function, values)
        }
    }

    /// `&&` (absorbing false) and `||` (absorbing true): the absorbing value on either side
    /// wins over an error on the other; otherwise the first error, then the result.
    private func logical(_ a: CELExpr, _ b: CELExpr, absorbing: Bool) throws(CELEvalError) -> JSONValue {
        let left = result(a)
        if case .success(.bool(absorbing)) = left { return .bool(absorbing) }
        let right = result(b)
        if case .success(.bool(absorbing)) = right { return .bool(absorbing) }
        for side in [left, right] {
            switch side {
            case .failure(let error): throw error
            case .success(.bool): continue
            case .success: throw Self.noOverload
            }
        }
        return .bool(!absorbing)
    }

    private func result(_ e: CELExpr) -> Result<JSONValue, CELEvalError> {
        do { return .success(try eval(e)) } catch { return .failure(error) }
    }

    // MARK: operators

    static let noOverload = CELEvalError(message: "no such overload")

    static func select(_ base: JSONValue, _ field: String) throws(CELEvalError) -> JSONValue {
        guard case .object(let o) = base else { throw noOverload }
        guard let value = o[field] else { throw CELEvalError(message: "no such key: \(field)") }
        return value
    }

    static func index(_ base: JSONValue, _ index: JSONValue) throws(CELEvalError) -> JSONValue {
        switch (base, index) {
        case (.array(let items), .int(let i)):
            guard i >= 0, i < items.count else { throw CELEvalError(message: "index '\(i)' out of range in list size '\(items.count)'") }
            return items[i]
        case (.object(let o), .string(let key)):
            guard let value = o[key] else { throw CELEvalError(message: "no such key: \(key)") }
            return value
        case (.object, _):
            throw CELEvalError(message: "no such key: \(String(decoding: index.jsonBytes(), as: UTF8.self))")
        default:
            throw noOverload
        }
    }

    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { k, v in y[k].map { equal(v, $0) } ?? false }
        default: return a == b
        }
    }

    static func compare(_ op: CELCompareOperator, _ a: JSONValue, _ b: JSONValue) throws(CELEvalError) -> Bool {
        switch op {
        case .equal: return equal(a, b)
        case .notEqual: return !equal(a, b)
        default: break
        }
        let order: Int
        switch (a, b) {
        case (.int(let x), .int(let y)): order = x < y ? -1 : (x == y ? 0 : 1)
        case (.int(let x), .double(let y)): order = Double(x) < y ? -1 : (Double(x) == y ? 0 : 1)
        case (.double(let x), .int(let y)): order = x < Double(y) ? -1 : (x == Double(y) ? 0 : 1)
        case (.double(let x), .double(let y)): order = x < y ? -1 : (x == y ? 0 : 1)
        case (.bool(let x), .bool(let y)): order = x == y ? 0 : (!x ? -1 : 1)
        case (.string(let x), .string(let y)):
            // Go compares strings by their UTF-8 bytes.
            order = x == y ? 0 : (x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1)
        default: throw noOverload
        }
        switch op {
        case .less: return order < 0
        case .lessOrEqual: return order <= 0
        case .greater: return order > 0
        default: return order >= 0
        }
    }

    static func contains(_ container: JSONValue, _ element: JSONValue) throws(CELEvalError) -> Bool {
        switch container {
        case .array(let items): return items.contains { equal($0, element) }
        case .object(let o): return element.stringValue.map { o[$0] != nil } ?? false
        default: throw noOverload
        }
    }

    static func call(_ function: CELFunction, _ args: [JSONValue]) throws(CELEvalError) -> JSONValue {
        if function == .size {
            switch args.first {
            case .string(let s)?: return .int(s.unicodeScalars.count)
            case .array(let a)?: return .int(a.count)
            case .object(let o)?: return .int(o.count)
            default: throw noOverload
            }
        }
        guard args.count == 2, case .string(let s) = args[0], case .string(let t) = args[1] else { throw noOverload }
        switch function {
        // By code points, as Go does (Swift's `hasPrefix` would compare canonical equivalents).
        case .startsWith: return .bool(s.unicodeScalars.starts(with: t.unicodeScalars))
        case .endsWith: return .bool(s.unicodeScalars.reversed().starts(with: t.unicodeScalars.reversed()))
        case .contains:
            let hay = Array(s.utf8), needle = Array(t.utf8)
            if needle.isEmpty { return .bool(true) }
            guard hay.count >= needle.count else { return .bool(false) }
            return .bool((0...(hay.count - needle.count)).contains { hay[$0..<$0 + needle.count].elementsEqual(needle) })
        case .matches:
            // RE2's MatchString: true when the pattern matches anywhere in the string.
            guard let re = try? NSRegularExpression(pattern: t) else { throw CELEvalError(message: "error parsing regexp: \(t)") }
            return .bool(re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil)
        case .size: throw noOverload
        }
    }
}
