/// The label-selector grammar kube-apiserver accepts (`key`, `!key`, `key=v`, `key==v`,
/// `key!=v`, `key in (a,b)`, `key notin (a,b)`, comma-separated), checked locally so a typo
/// is a start-up error instead of a watch that retries forever on `400 BadRequest`.
enum LabelSelectorSyntax {
    /// Nil when `selector` is valid, else what is wrong with it.
    static func problem(_ selector: String) -> String? {
        var requirements: [Substring] = []
        var depth = 0
        var start = selector.startIndex
        for i in selector.indices {
            switch selector[i] {
            case "(": depth += 1
            case ")": depth -= 1; if depth < 0 { return "unbalanced ')'" }
            case "," where depth == 0:
                requirements.append(selector[start..<i])
                start = selector.index(after: i)
            default: break
            }
        }
        guard depth == 0 else { return "unbalanced '('" }
        requirements.append(selector[start...])
        for raw in requirements {
            let r = raw.trimmingCharacters(in: .whitespaces)
            if let p = requirementProblem(r) { return "\"\(r)\": \(p)" }
        }
        return nil
    }

    private static func requirementProblem(_ r: String) -> String? {
        if r.isEmpty { return "empty requirement" }
        if r.hasPrefix("!") { return keyProblem(String(r.dropFirst()).trimmingCharacters(in: .whitespaces)) }
        for op in ["==", "!=", "="] {
            if let range = r.range(of: op) {
                let key = r[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
                let value = r[range.upperBound...].trimmingCharacters(in: .whitespaces)
                return keyProblem(key) ?? valueProblem(value)
            }
        }
        let words = r.split(separator: " ", maxSplits: 1).map(String.init)
        if words.count == 2 {
            let rest = words[1].trimmingCharacters(in: .whitespaces)
            for op in ["notin", "in"] where rest.hasPrefix(op) {
                let list = rest.dropFirst(op.count).trimmingCharacters(in: .whitespaces)
                guard list.hasPrefix("("), list.hasSuffix(")") else { return "\(op) needs a parenthesised list" }
                let values = list.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                if let k = keyProblem(words[0]) { return k }
                for v in values { if let p = valueProblem(v) { return p } }
                return nil
            }
            return "unknown operator \"\(rest.split(separator: " ").first ?? "")\""
        }
        return keyProblem(r)
    }

    /// `[prefix/]name`: prefix a DNS subdomain, name at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends.
    private static func keyProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return "key \"\(key)\" has more than one '/'" }
        if parts.count == 2 {
            let prefix = parts[0]
            guard !prefix.isEmpty, prefix.count <= 253,
                  prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ !$0.isEmpty && $0.first != "-" && $0.last != "-" && $0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" } })
            else { return "key prefix \"\(prefix)\" is not a DNS subdomain" }
        }
        guard let name = parts.last, !name.isEmpty else { return "key is empty" }
        return nameProblem(String(name)).map { "key \"\(key)\": \($0)" }
    }

    private static func valueProblem(_ value: String) -> String? {
        value.isEmpty ? nil : nameProblem(value).map { "value \"\(value)\": \($0)" }
    }

    private static func nameProblem(_ s: String) -> String? {
        guard s.count <= 63 else { return "longer than 63 characters" }
        guard s.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" || $0 == "." }) else { return "only letters, digits, '-', '_' and '.' are allowed" }
        guard let f = s.first, let l = s.last, f.isLetter || f.isNumber, l.isLetter || l.isNumber else { return "must start and end with a letter or digit" }
        return nil
    }
}
