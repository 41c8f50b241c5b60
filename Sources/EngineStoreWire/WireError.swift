/// Why bytes could not be decoded. Each case names the field or part that failed,
/// so the error frame sent back tells the client exactly what was wrong.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the announced or required length.
    case truncated(String)
    /// A varint longer than 10 bytes or wider than 64 bits.
    case varintOverflow(String)
    /// A field arrived with a wire type its schema does not allow.
    case wrongWireType(field: String, got: UInt8)
    /// A wire type outside {0, 1, 2, 5}.
    case unknownWireType(UInt8)
    /// Field number 0 or above the 29-bit maximum.
    case invalidFieldNumber(UInt64)
    /// A string field that is not valid UTF-8.
    case invalidUTF8(String)
    /// A non-repeated field sent twice.
    case duplicateField(String)
    /// A required field was absent.
    case missingField(String)
    /// A value outside the range its schema allows (bool not 0/1, unknown enum value, too long…).
    case outOfRange(field: String, reason: String)
    /// Nested messages deeper than `WireLimits.maxNestingDepth`.
    case nestingTooDeep
    /// Frame-level problems.
    case frameTooShort(UInt32)
    case frameTooLarge(announced: UInt32, limit: UInt32)
    case unknownFrameKind(UInt8)

    public var description: String {
        switch self {
        case .truncated(let w): return "truncated: \(w)"
        case .varintOverflow(let w): return "varint overflow: \(w)"
        case .wrongWireType(let f, let t): return "field \(f): wrong wire type \(t)"
        case .unknownWireType(let t): return "unknown wire type \(t)"
        case .invalidFieldNumber(let n): return "invalid field number \(n)"
        case .invalidUTF8(let f): return "field \(f): invalid UTF-8"
        case .duplicateField(let f): return "field \(f): sent more than once"
        case .missingField(let f): return "field \(f): required"
        case .outOfRange(let f, let r): return "field \(f): \(r)"
        case .nestingTooDeep: return "messages nested too deeply"
        case .frameTooShort(let n): return "frame length \(n) shorter than the \(FrameHeader.size)-byte header"
        case .frameTooLarge(let n, let limit): return "frame length \(n) exceeds limit \(limit)"
        case .unknownFrameKind(let k): return "unknown frame kind \(k)"
        }
    }

    /// The field the error is about, when there is one.
    public var field: String? {
        switch self {
        case .truncated(let f), .varintOverflow(let f), .invalidUTF8(let f), .duplicateField(let f),
             .missingField(let f):
            return f
        case .wrongWireType(let f, _), .outOfRange(let f, _):
            return f
        default:
            return nil
        }
    }
}

/// Hard limits the decoder enforces before it allocates.
public enum WireLimits {
    public static let maxNestingDepth = 16
    /// Default maximum frame body length (4 MiB); servers may configure another and advertise it in HelloOk.
    public static let defaultMaxFrameBytes: UInt32 = 4 * 1024 * 1024
    /// Field numbers are 29 bits, as in Protocol Buffers.
    public static let maxFieldNumber: UInt64 = (1 << 29) - 1
}
