import Glibc
import Synchronization

// Values in Postgres's text format (parameters and COPY data), shared by every store.

/// Shortest text that reads back as the same double (`description`: interpolation wrote the same
/// text through a TextOutputStream, 2 % of a worker's samples).
@inline(__always)
func pgText(_ d: Double) -> String { d.description }

func pgText(_ b: Bool) -> String { b ? "true" : "false" }

/// A Postgres array literal of text elements (nil = NULL), every element quoted. Built as bytes:
/// a batch's parameters are such literals, and String appends were a fifth of the service's CPU.
func pgArray(_ items: [String?]) -> String {
    let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
    var out: [UInt8] = []
    out.reserveCapacity(items.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
    out.append(UInt8(ascii: "{"))
    for (i, item) in items.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        guard var item else { out.append(contentsOf: "NULL".utf8); continue }
        out.append(quote)
        item.withUTF8 { bytes in
            if !bytes.contains(where: { $0 == quote || $0 == backslash }) { out.append(contentsOf: bytes); return }
            for b in bytes {
                if b == quote || b == backslash { out.append(backslash) }
                out.append(b)
            }
        }
        out.append(quote)
    }
    out.append(UInt8(ascii: "}"))
    return String(decoding: out, as: UTF8.self)
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

/// The lower-case hex digit of `v`'s low four bits, as UTF-8.
@inline(__always)
func hexDigit(_ v: UInt8) -> UInt8 {
    let d = v & 0xf
    return d < 10 ? 0x30 &+ d : 0x57 &+ d
}

/// Eight random hex digits: the tail of a row id, so that ids never repeat.
func randomSuffix() -> String {
    let v = IDRandom.next()
    return String(unsafeUninitializedCapacity: 8) { out in
        for i in 0..<8 { out[i] = hexDigit(UInt8(truncatingIfNeeded: v >> UInt32(28 - 4 * i))) }
        return 8
    }
}

/// Random bits for row ids without a system call each: `SystemRandomNumberGenerator` reads
/// `getrandom` per call, 2.4 % of a Postgres worker's samples under SavePosition opens. SplitMix64
/// over an atomic counter seeded once from the system: 32 bits as evenly spread as before, and
/// seeded apart per process (the ids' model, symbol and time prefix keeps them apart in any case).
enum IDRandom {
    private static let state = Atomic<UInt64>({ var rng = SystemRandomNumberGenerator(); return rng.next() }())

    static func next() -> UInt32 {
        var z = state.wrappingAdd(0x9e37_79b9_7f4a_7c15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return UInt32(truncatingIfNeeded: (z ^ (z >> 31)) >> 32)
    }
}
