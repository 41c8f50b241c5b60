import EngineStoreWire

/// Field checks shared by the RPC families. Each failure names the field; nothing is written.
enum Validate {
    /// Before 2015-01-01 is a unit mistake (seconds instead of milliseconds) or garbage.
    static let earliestMs: Int64 = 1_420_070_400_000

    static func identifier(_ value: String, _ field: String, maxBytes: Int = 128) throws(ServiceError) {
        guard !value.isEmpty else { throw .invalid(field, "must not be empty") }
        guard value.utf8.count <= maxBytes else { throw .invalid(field, "longer than \(maxBytes) bytes") }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw .invalid(field, "contains control characters")
        }
    }

    /// An identifier that becomes part of a Redis key (model id, trader id, trade id, provider): the
    /// `identifier` rules, and none of the characters that would let two different values make one key
    /// or move a key to another Redis Cluster slot: `:` (the key separator), `{` and `}` (hash tags),
    /// whitespace (including U+0085, U+00A0, U+2028, U+2029) and control characters (C0, DEL, C1).
    static func keyPart(_ value: String, _ field: String, maxBytes: Int = 128) throws(ServiceError) {
        try identifier(value, field, maxBytes: maxBytes)
        for scalar in value.unicodeScalars {
            switch scalar {
            case ":": throw .invalid(field, "must not contain ':' (the Redis key separator)")
            case "{", "}": throw .invalid(field, "must not contain '{' or '}' (Redis Cluster hash tags)")
            case "\u{21}"..."\u{7e}": continue  // printable ASCII but space: neither whitespace nor control (fast path)
            default:
                if scalar.properties.isWhitespace { throw .invalid(field, "must not contain whitespace") }
                if scalar.value < 0x20 || (scalar.value >= 0x7f && scalar.value <= 0x9f) {
                    throw .invalid(field, "contains control characters")
                }
            }
        }
    }

    /// Symbols: 1–32 bytes of letters, digits and `-_./`; stored upper-case. No `:` (the Redis key
    /// separator: `price:latest:<provider>:<symbol>` must not equal another pair's key).
    static func symbol(_ value: String, _ field: String = "symbol") throws(ServiceError) -> String {
        guard !value.isEmpty else { throw .invalid(field, "must not be empty") }
        guard value.utf8.count <= 32 else { throw .invalid(field, "longer than 32 bytes") }
        var lower = false
        for b in value.utf8 {
            let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
                || b == 0x2d || b == 0x5f || b == 0x2e || b == 0x2f
            guard ok else { throw .invalid(field, "may only hold letters, digits and -_./") }
            if b >= 0x61 { lower = true }
        }
        // ASCII only (checked above): most symbols arrive upper-case already and are kept as they are.
        guard lower else { return value }
        return String(decoding: value.utf8.map { $0 >= 0x61 ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    static func positive(_ value: Double?, _ field: String) throws(ServiceError) {
        guard let value else { return }
        guard value.isFinite else { throw .invalid(field, "must be finite") }
        guard value > 0 else { throw .invalid(field, "must be positive") }
    }

    static func nonNegative(_ value: Double?, _ field: String) throws(ServiceError) {
        guard let value else { return }
        guard value.isFinite else { throw .invalid(field, "must be finite") }
        guard value >= 0 else { throw .invalid(field, "must not be negative") }
    }

    static func finite(_ value: Double?, _ field: String) throws(ServiceError) {
        guard let value else { return }
        guard value.isFinite else { throw .invalid(field, "must be finite") }
    }

    /// An event time: ms since the epoch, from 2015-01-01 to the server's clock + `maxSkewMs`
    /// (`--max-clock-skew-ms`). A later time would freeze every "latest" value that only moves forward
    /// (`price_latest`, analytics, the leaderboard) until the real clock caught up.
    static func timestampMs(_ value: Int64?, _ field: String, maxSkewMs: Int64) throws(ServiceError) {
        guard let value else { return }
        guard value >= earliestMs else {
            throw .invalid(field, "\(value) is not a plausible epoch time in milliseconds")
        }
        let now = epochMillis()
        guard value <= now &+ maxSkewMs else {
            throw .invalid(field, "\(value) is \(value &- now) ms ahead of the server clock (at most \(maxSkewMs) ms allowed)")
        }
    }

    static func json(_ value: String?, _ field: String, maxBytes: Int = 64 * 1024) throws(ServiceError) {
        guard let value else { return }
        guard value.utf8.count <= maxBytes else { throw .invalid(field, "longer than \(maxBytes) bytes") }
        guard !value.utf8.contains(0) else { throw .invalid(field, "contains a NUL character") }
        // Full syntax is checked by Postgres (jsonb input); a cheap first-character check catches most mistakes here.
        guard let first = value.utf8.first(where: { $0 != 0x20 && $0 != 0x0a && $0 != 0x09 && $0 != 0x0d }),
              first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else {
            throw .invalid(field, "must be a JSON object or array")
        }
        try jsonDepth(value, field)
    }

    /// Deepest JSON nesting accepted. Postgres parses `jsonb` recursively, and a deep enough value
    /// (60,000 `[`) exhausts its stack (SQLSTATE 54001), so the depth is checked here first.
    static let maxJSONDepth = 64

    /// Arrays and objects nested at most `maxJSONDepth` levels (a top-level `[]` is depth 1). Only
    /// the nesting is counted (brackets inside strings are skipped); the full syntax is Postgres's job.
    static func jsonDepth(_ value: String, _ field: String) throws(ServiceError) {
        var depth = 0
        var inString = false
        var escaped = false
        for b in value.utf8 {
            if inString {
                if escaped {
                    escaped = false
                } else if b == UInt8(ascii: "\\") {
                    escaped = true
                } else if b == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                guard depth <= maxJSONDepth else { throw .invalid(field, "JSON nested deeper than \(maxJSONDepth) levels") }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            default:
                break
            }
        }
    }

    static func orderID(_ value: Int64?, _ field: String) throws(ServiceError) {
        guard let value else { return }
        guard value >= 0 else { throw .invalid(field, "must not be negative") }
    }

    static func jsonObject(_ value: String?, _ field: String, maxBytes: Int = 64 * 1024) throws(ServiceError) {
        guard let value else { return }
        try json(value, field, maxBytes: maxBytes)
        guard value.utf8.first(where: { $0 != 0x20 && $0 != 0x0a && $0 != 0x09 && $0 != 0x0d }) == UInt8(ascii: "{") else {
            throw .invalid(field, "must be a JSON object")
        }
    }

    static func text(_ value: String?, _ field: String, maxBytes: Int) throws(ServiceError) {
        guard let value else { return }
        guard value.utf8.count <= maxBytes else { throw .invalid(field, "longer than \(maxBytes) bytes") }
        // Postgres text cannot hold NUL (and libpq would cut the value there).
        guard !value.utf8.contains(0) else { throw .invalid(field, "contains a NUL character") }
    }
}
