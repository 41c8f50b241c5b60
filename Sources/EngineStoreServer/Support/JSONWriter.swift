/// Builds compact JSON objects for cache values without Foundation's encoder
/// (the hot path writes one per request; key order is fixed and documented in proto-spec §10.12).
struct JSONObjectWriter {
    private(set) var text = "{"
    private var first = true

    private mutating func key(_ k: String) {
        if !first { text += "," }
        first = false
        text += "\""
        text += k
        text += "\":"
    }

    mutating func string(_ k: String, _ v: String?) {
        key(k)
        guard let v else { text += "null"; return }
        JSONObjectWriter.appendQuoted(v, to: &text)
    }

    mutating func number(_ k: String, _ v: Double?) {
        key(k)
        guard let v, v.isFinite else { text += "null"; return }
        if v == v.rounded(), abs(v) < 1e15 { text += String(Int64(v)) } else { text += "\(v)" }
    }

    mutating func int(_ k: String, _ v: Int64?) {
        key(k)
        guard let v else { text += "null"; return }
        text += String(v)
    }

    mutating func bool(_ k: String, _ v: Bool?) {
        key(k)
        guard let v else { text += "null"; return }
        text += v ? "true" : "false"
    }

    /// Inserts already-valid JSON (e.g. a JSONB column as Postgres printed it).
    mutating func raw(_ k: String, _ json: String?) {
        key(k)
        text += json ?? "null"
    }

    mutating func finish() -> String {
        text += "}"
        return text
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
