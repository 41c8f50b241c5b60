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

    /// A JSON string literal: `"`, `\\`, `\n`, `\r`, `\t` escaped, the other C0 controls and whatever
    /// `escape` names (the log handlers escape more) written as `\uXXXX`. Without `escape` it runs over
    /// the UTF-8 bytes (a byte below 0x80 is an ASCII scalar; the bytes of any other scalar are copied),
    /// the cache documents' hot path; with it, scalar by scalar.
    static func appendQuoted(_ s: String, to out: inout [UInt8], escape: ((Unicode.Scalar) -> Bool)? = nil) {
        out.append(UInt8(ascii: "\""))
        if let escape {
            for scalar in s.unicodeScalars {
                if scalar.isASCII {
                    appendASCII(UInt8(scalar.value), escaped: scalar.value < 0x20 || escape(scalar), to: &out)
                } else if escape(scalar) {
                    appendUnicodeEscape(scalar.value, to: &out)
                } else {
                    UTF8.encode(scalar) { out.append($0) }
                }
            }
        } else {
            for b in s.utf8 {
                if b < 0x80 { appendASCII(b, escaped: b < 0x20, to: &out) } else { out.append(b) }
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `appendQuoted` onto a `String`.
    static func appendQuoted(_ s: String, to out: inout String, escape: ((Unicode.Scalar) -> Bool)? = nil) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count + 2)
        appendQuoted(s, to: &bytes, escape: escape)
        out += String(decoding: bytes, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func appendASCII(_ b: UInt8, escaped: Bool, to out: inout [UInt8]) {
        switch b {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
        case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
        case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
        case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
        default: if escaped { appendUnicodeEscape(UInt32(b), to: &out) } else { out.append(b) }
        }
    }

    /// `\uXXXX`: at least four lower-case hex digits.
    private static func appendUnicodeEscape(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "u"))
        var digits: [UInt8] = []
        var v = value
        repeat { digits.append(hexDigits[Int(v & 0xf)]); v >>= 4 } while v > 0 || digits.count < 4
        out.append(contentsOf: digits.reversed())
    }
}
