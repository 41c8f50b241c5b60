/// Passwords in libpq connection strings, found the way libpq reads them, so that they can be masked
/// in the string itself (`redactConnectionString`) and wherever they appear in an error text
/// (`SecretRedactor`): libpq echoes parts of the string it could not parse, e.g.
/// `invalid percent-encoded token: "<password>"`.

/// Keywords whose values are secrets (`password`, and `sslpassword` for the client key).
private let secretKeywords: Set<String> = ["password", "sslpassword"]

/// One `keyword=value` of a connection string: where its value is written and what it means.
struct ConnectionParameter {
    var keyword: String
    /// The value as written (with quotes and backslashes), as a byte range of the string.
    var raw: Range<Int>
    /// The value as libpq reads it (escapes or percent-encoding resolved); nil if it cannot be decoded.
    var value: String?
}

/// The string's secret values: the password (and sslpassword) as written and as decoded, longest first.
public func connectionStringSecrets(_ s: String) -> [String] {
    let bytes = Array(s.utf8)
    var found: [String] = []
    for p in secretParameters(bytes) {
        found.append(String(decoding: bytes[p.raw], as: UTF8.self))
        if let v = p.value { found.append(v) }
    }
    if isURI(bytes), let info = userinfoPassword(bytes, libpqRule: false) {
        // A password with an unencoded '/', '@', '?' or ':' makes libpq cut it and echo a piece (e.g.
        // `invalid integer value "Sec" for connection option "port"` for `u:Sec/ret@host`): mask the pieces too.
        let raw = String(decoding: bytes[info], as: UTF8.self)
        for piece in raw.split(whereSeparator: { "/@?#:&".contains($0) }) where piece.utf8.count >= 3 {
            found.append(String(piece))
            if let d = percentDecoded(piece.utf8) { found.append(d) }
        }
    }
    return normalizedSecrets(found)
}

/// Removes passwords from a libpq connection string (URI or keyword/value form) so it can be logged.
/// Keyword values follow libpq's rules: a value is single-quoted (with `\'` and `\\` escapes) or runs to
/// the next unescaped whitespace (a backslash escapes the next character). In a URI, the password of the
/// userinfo and `password=` / `sslpassword=` query parameters are masked. Any other place the password
/// appears verbatim is masked too.
public func redactConnectionString(_ s: String) -> String {
    let bytes = Array(s.utf8)
    var ranges = secretParameters(bytes).map(\.raw)
    if isURI(bytes), let info = userinfoPassword(bytes, libpqRule: false) { ranges.append(info) }
    // Overlapping ranges (the userinfo password by libpq's rule and by the lenient one) are masked as one.
    var merged: [Range<Int>] = []
    for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
        if let last = merged.last, r.lowerBound <= last.upperBound {
            merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
        } else {
            merged.append(r)
        }
    }
    // From the end, so that earlier ranges keep their offsets.
    var out = bytes
    for r in merged.reversed() { out.replaceSubrange(r, with: Array("***".utf8)) }
    return SecretRedactor(secrets: connectionStringSecrets(s)).redact(String(decoding: out, as: UTF8.self))
}

/// Masks known secret values wherever they appear in a text (an error message from libpq or hiredis,
/// a log line). Secrets are matched byte for byte, longest first. Values shorter than 3 bytes are not
/// searched for: they would mask unrelated letters of every line (they are still masked where they
/// stand in a connection string, by `redactConnectionString`).
public struct SecretRedactor: Sendable {
    public let secrets: [String]

    public init(secrets: [String]) {
        self.secrets = normalizedSecrets(secrets)
    }

    /// The passwords of a libpq connection string (as written and as decoded).
    public init(connectionString: String) {
        self.secrets = connectionStringSecrets(connectionString)
    }

    /// This redactor and `other`'s secrets together.
    public func adding(_ other: SecretRedactor) -> SecretRedactor {
        SecretRedactor(secrets: secrets + other.secrets)
    }

    public var isEmpty: Bool { secrets.isEmpty }

    public func redact(_ text: String) -> String {
        guard !secrets.isEmpty else { return text }
        var bytes = Array(text.utf8)
        var changed = false
        for secret in secrets {
            changed = replaceAll(Array(secret.utf8), in: &bytes) || changed
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : text
    }
}

/// Replaces every occurrence of `needle` in `bytes` with `***`; true if there was one.
private func replaceAll(_ needle: [UInt8], in bytes: inout [UInt8]) -> Bool {
    guard !needle.isEmpty, needle.count <= bytes.count else { return false }
    var out: [UInt8] = []
    var i = 0
    var found = false
    while i < bytes.count {
        if bytes[i] == needle[0], i + needle.count <= bytes.count, bytes[i..<(i + needle.count)].elementsEqual(needle) {
            out.append(contentsOf: "***".utf8)
            i += needle.count
            found = true
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    if found { bytes = out }
    return found
}

private func normalizedSecrets(_ values: [String]) -> [String] {
    var seen = Set<String>()
    return values.filter { $0.utf8.count >= 3 && seen.insert($0).inserted }.sorted { $0.utf8.count > $1.utf8.count }
}

// MARK: - Parsing

private func isURI(_ b: [UInt8]) -> Bool {
    b.starts(with: Array("postgresql://".utf8)) || b.starts(with: Array("postgres://".utf8))
}

private func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0d) }

/// Secret parameters of either form.
private func secretParameters(_ b: [UInt8]) -> [ConnectionParameter] {
    let all = isURI(b) ? uriQueryParameters(b) : keywordParameters(b)
    return all.filter { secretKeywords.contains($0.keyword.lowercased()) }
}

/// `keyword = value` pairs as libpq's conninfo_parse reads them. After a syntax error libpq stops;
/// here a broken pair is skipped and scanning goes on, so a later password is still found.
func keywordParameters(_ b: [UInt8]) -> [ConnectionParameter] {
    var out: [ConnectionParameter] = []
    var i = 0
    let n = b.count
    while i < n {
        while i < n, isSpace(b[i]) { i += 1 }
        guard i < n else { break }
        let keyStart = i
        while i < n, !isSpace(b[i]), b[i] != UInt8(ascii: "=") { i += 1 }
        let keyword = String(decoding: b[keyStart..<i], as: UTF8.self)
        while i < n, isSpace(b[i]) { i += 1 }
        guard i < n, b[i] == UInt8(ascii: "=") else { continue }  // missing "=": libpq refuses the string
        i += 1
        while i < n, isSpace(b[i]) { i += 1 }
        let valueStart = i
        var value: [UInt8] = []
        if i < n, b[i] == UInt8(ascii: "'") {
            i += 1
            // Up to the closing quote; unterminated (libpq refuses the string), the rest is the value.
            while i < n {
                if b[i] == UInt8(ascii: "\\"), i + 1 < n {
                    value.append(b[i + 1])
                    i += 2
                } else if b[i] == UInt8(ascii: "'") {
                    i += 1
                    break
                } else {
                    value.append(b[i])
                    i += 1
                }
            }
        } else {
            while i < n, !isSpace(b[i]) {
                if b[i] == UInt8(ascii: "\\"), i + 1 < n {
                    value.append(b[i + 1])
                    i += 2
                } else {
                    value.append(b[i])
                    i += 1
                }
            }
        }
        out.append(ConnectionParameter(keyword: keyword, raw: valueStart..<i, value: String(decoding: value, as: UTF8.self)))
    }
    return out
}

/// The byte range of the userinfo password of a URI. `libpqRule`: the userinfo ends at the first '@'
/// met before any '/' (what libpq does); otherwise at the last '@' of the authority and path, which is
/// what a person who did not percent-encode a '/' or '@' in the password meant.
private func userinfoPassword(_ b: [UInt8], libpqRule: Bool) -> Range<Int>? {
    guard let schemeEnd = firstIndex(of: Array("://".utf8), in: b) else { return nil }
    let start = schemeEnd + 3
    let queryStart = b[start...].firstIndex(of: UInt8(ascii: "?")) ?? b.count
    let at: Int?
    if libpqRule {
        var i = start
        while i < b.count, b[i] != UInt8(ascii: "@"), b[i] != UInt8(ascii: "/") { i += 1 }
        at = i < b.count && b[i] == UInt8(ascii: "@") ? i : nil
    } else {
        at = b[start..<queryStart].lastIndex(of: UInt8(ascii: "@"))
    }
    guard let at, let colon = b[start..<at].firstIndex(of: UInt8(ascii: ":")) else { return nil }
    return (colon + 1)..<at
}

/// `key=value` pairs of a URI's query string, percent-decoded.
private func uriQueryParameters(_ b: [UInt8]) -> [ConnectionParameter] {
    guard let q = b.firstIndex(of: UInt8(ascii: "?")) else { return [] }
    var out: [ConnectionParameter] = []
    var i = q + 1
    while i <= b.count {
        let end = b[i...].firstIndex(of: UInt8(ascii: "&")) ?? b.count
        if let eq = b[i..<end].firstIndex(of: UInt8(ascii: "=")) {
            let key = percentDecoded(b[i..<eq]) ?? String(decoding: b[i..<eq], as: UTF8.self)
            out.append(ConnectionParameter(keyword: key, raw: (eq + 1)..<end, value: percentDecoded(b[(eq + 1)..<end])))
        }
        i = end + 1
    }
    // The userinfo password, by libpq's rule and by the lenient one.
    for rule in [true, false] {
        if let r = userinfoPassword(b, libpqRule: rule) {
            out.append(ConnectionParameter(keyword: "password", raw: r, value: percentDecoded(b[r])))
        }
    }
    return out
}

private func firstIndex(of needle: [UInt8], in b: [UInt8]) -> Int? {
    guard needle.count <= b.count else { return nil }
    for i in 0...(b.count - needle.count) where b[i..<(i + needle.count)].elementsEqual(needle) { return i }
    return nil
}

/// Percent-decoding as libpq does it (`+` stays `+`); nil for a malformed escape or invalid UTF-8.
private func percentDecoded<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
    let b = Array(bytes)
    var out: [UInt8] = []
    var i = 0
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
    while i < b.count {
        if b[i] == UInt8(ascii: "%") {
            guard i + 2 < b.count, let h = hex(b[i + 1]), let l = hex(b[i + 2]) else { return nil }
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(b[i])
            i += 1
        }
    }
    return String(validating: out, as: UTF8.self)
}
