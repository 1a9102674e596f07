import Foundation

/// An ordered YAML value, so generated manifests read the way people write
/// them (apiVersion, kind, metadata first) and compare byte for byte in tests.
indirect enum YAML: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([YAML])
    case map([(String, YAML)])

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }

    /// Renders one document (no leading `---`).
    func render() -> String {
        var out = ""
        emit(into: &out, indent: 0, inList: false)
        return out
    }

    private func emit(into out: inout String, indent: Int, inList: Bool) {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .map(let pairs):
            if pairs.isEmpty { out += "{}\n"; return }
            for (i, (k, v)) in pairs.enumerated() {
                let lead = (inList && i == 0) ? "" : pad
                out += "\(lead)\(Self.key(k)):"
                v.emitValue(into: &out, indent: indent + 2)
            }
        case .list(let items):
            if items.isEmpty { out += "[]\n"; return }
            for item in items {
                out += "\(pad)- "
                switch item {
                case .map, .list: item.emit(into: &out, indent: indent + 2, inList: true)
                default: out += "\(item.scalar)\n"
                }
            }
        default:
            out += "\(pad)\(scalar)\n"
        }
    }

    private func emitValue(into out: inout String, indent: Int) {
        switch self {
        case .map(let pairs) where !pairs.isEmpty:
            out += "\n"
            emit(into: &out, indent: indent, inList: false)
        case .list(let items) where !items.isEmpty:
            out += "\n"
            emit(into: &out, indent: indent - 2, inList: false)
        case .map: out += " {}\n"
        case .list: out += " []\n"
        default: out += " \(scalar)\n"
        }
    }

    private var scalar: String {
        switch self {
        case .string(let s): return Self.quote(s)
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        default: return ""
        }
    }

    private static let plainSafe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./:"))

    /// Plain when unambiguous, else a double-quoted JSON-escaped string (valid YAML).
    static func quote(_ s: String) -> String {
        let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"]
        let looksNumeric = Double(s) != nil || Int(s) != nil
        if !s.isEmpty, s.unicodeScalars.allSatisfy(plainSafe.contains), !reserved.contains(s.lowercased()), !looksNumeric,
           !s.hasPrefix("-"), !s.hasSuffix(":"), !s.contains(": "), s.first != "." {
            return s
        }
        let data = (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
    }

    private static func key(_ k: String) -> String { quote(k) }
}
