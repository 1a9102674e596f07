/// One token of a CEL expression. `offset` counts characters from 0; errors report it as
/// cel-go does, `<input>:1:<offset + 1>`.
struct CELToken: Equatable, Sendable {
    enum Kind: Equatable, Sendable {
        case identifier(String)
        case int(Int)
        case string(String)
        /// Punctuation and operators: `== != < <= > >= && || ! - + * / % ? : . , ( ) [ ] { }`.
        case symbol(String)
        case end
    }
    var kind: Kind
    var offset: Int
}

/// Splits an expression into tokens, following the lexical rules of the CEL spec
/// (github.com/google/cel-spec `doc/langdef.md`, "Syntax"). Literals outside the subset the
/// devcluster evaluates (doubles, unsigned ints, bytes, raw and triple-quoted strings) are
/// refused here rather than read wrongly.
enum CELLexer {
    static func tokenize(_ source: String) throws(CELCompileError) -> [CELToken] {
        let chars = Array(source)
        var tokens: [CELToken] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0C}" { i += 1; continue }
            if c == "/", i + 1 < chars.count, chars[i + 1] == "/" {
                while i < chars.count, chars[i] != "\n" { i += 1 }
                continue
            }
            if c.isASCII, c.isLetter || c == "_" {
                let start = i
                while i < chars.count, chars[i].isASCII, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" { i += 1 }
                let word = String(chars[start..<i])
                if i < chars.count, chars[i] == "'" || chars[i] == "\"" {
                    switch word {
                    case "r", "R": throw .unsupported("raw string literals", at: start)
                    case "b", "B": throw .unsupported("bytes literals", at: start)
                    default: break
                    }
                }
                tokens.append(CELToken(kind: .identifier(word), offset: start))
                continue
            }
            if c.isASCII, c.isNumber {
                tokens.append(try number(chars, &i))
                continue
            }
            if c == "'" || c == "\"" {
                tokens.append(try string(chars, &i))
                continue
            }
            let two = i + 1 < chars.count ? String(chars[i...i + 1]) : ""
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                tokens.append(CELToken(kind: .symbol(two), offset: i))
                i += 2
                continue
            }
            if "<>!-+*/%?:.,()[]{}".contains(c) {
                tokens.append(CELToken(kind: .symbol(String(c)), offset: i))
                i += 1
                continue
            }
            throw .invalid("Syntax error: token recognition error at: '\(c)'", at: i)
        }
        tokens.append(CELToken(kind: .end, offset: chars.count))
        return tokens
    }

    private static func number(_ chars: [Character], _ i: inout Int) throws(CELCompileError) -> CELToken {
        let start = i
        if chars[i] == "0", i + 1 < chars.count, chars[i + 1] == "x" || chars[i + 1] == "X" {
            throw .unsupported("hexadecimal literals", at: start)
        }
        while i < chars.count, chars[i].isASCII, chars[i].isNumber { i += 1 }
        if i < chars.count {
            let next = chars[i]
            if next == "u" || next == "U" { throw .unsupported("unsigned integer literals", at: start) }
            if next == "e" || next == "E" || (next == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                throw .unsupported("double literals", at: start)
            }
        }
        guard let value = Int(String(chars[start..<i])) else {
            throw .invalid("invalid int literal", at: start)
        }
        return CELToken(kind: .int(value), offset: start)
    }

    private static func string(_ chars: [Character], _ i: inout Int) throws(CELCompileError) -> CELToken {
        let start = i
        let quote = chars[i]
        if i + 2 < chars.count, chars[i + 1] == quote, chars[i + 2] == quote {
            throw .unsupported("triple-quoted string literals", at: start)
        }
        i += 1
        var out = ""
        while true {
            guard i < chars.count, chars[i] != "\n" else { throw .invalid("Syntax error: token recognition error at: '\(String(chars[start...].prefix(20)))'", at: start) }
            let c = chars[i]
            if c == quote { i += 1; break }
            if c == "\\" {
                guard i + 1 < chars.count else { throw .invalid("Syntax error: unterminated escape sequence", at: i) }
                let e = chars[i + 1]
                i += 2
                switch e {
                case "\\": out.append("\\")
                case "'": out.append("'")
                case "\"": out.append("\"")
                case "`": out.append("`")
                case "?": out.append("?")
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "a": out.append("\u{07}")
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "v": out.append("\u{0B}")
                case "u", "U":
                    let width = e == "u" ? 4 : 8
                    guard i + width <= chars.count, let code = UInt32(String(chars[i..<i + width]), radix: 16), let scalar = Unicode.Scalar(code) else {
                        throw .invalid("Syntax error: invalid unicode escape", at: i - 2)
                    }
                    out.unicodeScalars.append(scalar)
                    i += width
                default:
                    // Octal and \x escapes exist in CEL but are rare in policies.
                    throw .unsupported("the escape sequence '\\\(e)'", at: i - 2)
                }
                continue
            }
            out.append(c)
            i += 1
        }
        return CELToken(kind: .string(out), offset: start)
    }
}
