import Glibc

// Values in Postgres's text format (parameters and COPY data), shared by every store.

/// Shortest text that reads back as the same double.
@inline(__always)
func pgText(_ d: Double) -> String { "\(d)" }

func pgText(_ b: Bool) -> String { b ? "true" : "false" }

/// A Postgres array literal of text elements (nil = NULL), every element quoted.
func pgArray(_ items: [String?]) -> String {
    var out = "{"
    for (i, item) in items.enumerated() {
        if i > 0 { out += "," }
        guard let item else { out += "NULL"; continue }
        out += "\""
        for c in item.unicodeScalars {
            if c == "\"" || c == "\\" { out += "\\" }
            out.unicodeScalars.append(c)
        }
        out += "\""
    }
    return out + "}"
}

func pgArray(_ items: [String]) -> String { pgArray(items.map { Optional($0) }) }

/// RFC 3339 UTC with milliseconds, e.g. 2025-11-27T00:00:00.000Z.
func rfc3339(_ ms: Int64) -> String {
    var t = time_t(ms / 1000)
    var parts = tm()
    gmtime_r(&t, &parts)
    func pad(_ v: Int32, _ n: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, n - s.count)) + s
    }
    let millis = Int32(((ms % 1000) + 1000) % 1000)
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
}

/// Eight random hex digits: the tail of a row id, so that ids never repeat.
func randomSuffix() -> String {
    var rng = SystemRandomNumberGenerator()
    let s = String(rng.next() as UInt32, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}
