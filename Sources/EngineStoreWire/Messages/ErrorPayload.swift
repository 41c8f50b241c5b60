/// Stable numeric error codes carried in error frames. Never renumbered.
public enum ErrorCode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// A field is missing, malformed or out of range; nothing was written.
    case invalidArgument = 1
    /// The thing acted on does not exist (e.g. closing a position that is not open).
    case notFound = 2
    /// The request conflicts with stored state (e.g. an idempotency key reused with another payload).
    case conflict = 3
    /// A dependency (Postgres) is unavailable; retry with the same idempotency key.
    case unavailable = 4
    /// The request's deadline passed before it completed; it may or may not have been applied.
    case deadlineExceeded = 5
    /// A limit was hit (connections, in-flight requests, frame size).
    case resourceExhausted = 6
    /// The peer is not allowed to use this socket.
    case unauthenticated = 7
    /// A bug or unexpected state in the server.
    case internalError = 8
    /// The method id is unknown or not implemented by this server.
    case unimplemented = 9
    /// The frame itself could not be parsed (header, length, payload encoding).
    case protocolError = 10
    /// The request is not allowed in the connection's state (e.g. before Hello).
    case failedPrecondition = 11
    /// No protocol version in common.
    case unsupportedVersion = 12
    /// The server is shutting down and takes no new requests.
    case shuttingDown = 13

    public var description: String {
        switch self {
        case .invalidArgument: "invalid_argument"
        case .notFound: "not_found"
        case .conflict: "conflict"
        case .unavailable: "unavailable"
        case .deadlineExceeded: "deadline_exceeded"
        case .resourceExhausted: "resource_exhausted"
        case .unauthenticated: "unauthenticated"
        case .internalError: "internal"
        case .unimplemented: "unimplemented"
        case .protocolError: "protocol_error"
        case .failedPrecondition: "failed_precondition"
        case .unsupportedVersion: "unsupported_version"
        case .shuttingDown: "shutting_down"
        }
    }

    /// Whether the code by itself means a retry (with the same idempotency key) is safe and may succeed.
    public var isRetryableByDefault: Bool {
        switch self {
        case .unavailable, .deadlineExceeded, .resourceExhausted, .shuttingDown: true
        default: false
        }
    }
}

/// Payload of an error frame (kind 3).
public struct ErrorPayload: WireMessage {
    /// Raw code; receivers map codes they do not know to `internal`.
    public var code: UInt8
    public var message: String
    public var retryable: Bool
    /// The request field the error is about, when there is one (e.g. "quantity").
    public var field: String?

    public init(code: ErrorCode, message: String, retryable: Bool? = nil, field: String? = nil) {
        self.code = code.rawValue
        self.message = message
        self.retryable = retryable ?? code.isRetryableByDefault
        self.field = field
    }

    public var errorCode: ErrorCode { ErrorCode(rawValue: code) ?? .internalError }

    public init(from r: inout FieldReader) throws(WireError) {
        var code: UInt8?
        var message = ""
        var retryable = false
        var field: String?
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "code"); let v = try f.uint64("code"); code = v <= 255 ? UInt8(v) : ErrorCode.internalError.rawValue
            case 2: try r.once(f, "message"); message = try f.string("message")
            case 3: try r.once(f, "retryable"); retryable = try f.bool("retryable")
            case 4: try r.once(f, "field"); field = try f.string("field")
            default: break
            }
        }
        self.code = try required(code, "code")
        self.message = message
        self.retryable = retryable
        self.field = field
    }

    public func encode(into w: inout FieldWriter) {
        w.uint(1, UInt64(code))
        w.string(2, message)
        w.bool(3, retryable)
        w.string(4, field)
    }
}

/// Payload of a server notice (kind 4, request id 0): something the server tells unprompted.
public struct Notice: WireMessage {
    public enum Code: UInt8, Sendable {
        /// The server is shutting down: in-flight requests finish, new ones are refused; reconnect elsewhere or later.
        case goingAway = 1
    }

    public var code: UInt8
    public var message: String

    public init(code: Code, message: String) {
        self.code = code.rawValue
        self.message = message
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var code: UInt8?
        var message = ""
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "code"); let v = try f.uint64("code"); code = UInt8(truncatingIfNeeded: min(v, 255))
            case 2: try r.once(f, "message"); message = try f.string("message")
            default: break
            }
        }
        self.code = try required(code, "code")
        self.message = message
    }

    public func encode(into w: inout FieldWriter) {
        w.uint(1, UInt64(code))
        w.string(2, message)
    }
}
