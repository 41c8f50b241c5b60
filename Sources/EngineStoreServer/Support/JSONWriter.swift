/// Builds compact JSON objects for cache values without Foundation's encoder
/// (the hot path writes one per request; key order is fixed and documented in proto-spec §10.12).
/// It writes UTF-8 bytes: appending to a `String` piece by piece, and a value scalar by scalar, was
/// 11 % of the service's CPU under closes (issue 15; a close builds its trade document twice).
struct JSONObjectWriter {
    private var bytes: [UInt8]
    private var first = true

    init() {
        bytes = []
        bytes.reserveCapacity(256)
        bytes.append(UInt8(ascii: "{"))
    }

    private mutating func key(_ k: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: k.utf8)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func literal(_ s: String) { bytes.append(contentsOf: s.utf8) }

    mutating func string(_ k: String, _ v: String?) {
        key(k)
        guard let v else { literal("null"); return }
        JSONObjectWriter.appendQuoted(v, to: &bytes)
    }

    mutating func number(_ k: String, _ v: Double?) {
        key(k)
        guard let v, v.isFinite else { literal("null"); return }
        if v == v.rounded(), abs(v) < 1e15 { literal(String(Int64(v))) } else { literal(v.description) }
    }

    mutating func int(_ k: String, _ v: Int64?) {
        key(k)
        guard let v else { literal("null"); return }
        literal(String(v))
    }

    mutating func bool(_ k: String, _ v: Bool?) {
        key(k)
        guard let v else { literal("null"); return }
        literal(v ? "true" : "false")
    }

    /// Inserts already-valid JSON (e.g. a JSONB column as Postgres printed it).
    mutating func raw(_ k: String, _ json: String?) {
        key(k)
        literal(json ?? "null")
    }

    mutating func finish() -> String {
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A JSON string literal with JSON's own escapes (`"`, `\\` and the C0 controls), over UTF-8: a
    /// byte below 0x80 is an ASCII scalar, and the bytes of any other scalar are copied as they are.
    /// The same text as `appendQuoted(_:to:escape:)` with its default rule.
    static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(b); out.append(b)
            case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xf)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// A JSON string literal; `escape` picks the characters written as `\\uXXXX` besides the C0
    /// controls JSON requires (the log handlers escape more).
    static func appendQuoted(_ s: String, to out: inout String, escape: (Unicode.Scalar) -> Bool = { $0.value < 0x20 }) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where escape(c):
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
