// Hand-written additions to the generated error and notice types (Generated/).

extension ErrorCode {
    /// Whether the code by itself means a retry (with the same idempotency key) is safe and may succeed.
    public var isRetryableByDefault: Bool {
        switch self {
        case .unavailable, .deadlineExceeded, .resourceExhausted, .shuttingDown: true
        default: false
        }
    }
}

extension ErrorPayload {
    /// `retryable` defaults to what the code implies.
    public init(code: ErrorCode, message: String, retryable: Bool? = nil, field: String? = nil) {
        self.code = code.rawValue
        self.message = message
        self.retryable = retryable ?? code.isRetryableByDefault
        self.field = field
    }

    /// The code; one this version does not know reads as `internal`.
    public var errorCode: ErrorCode { ErrorCode(rawValue: code) ?? .internalError }
}

extension Notice {
    /// NoticeCode of the schema.
    public enum Code: UInt8, Sendable {
        /// The server is shutting down: in-flight requests finish, new ones are refused; reconnect elsewhere or later.
        case goingAway = 1
    }

    public init(code: Code, message: String) {
        self.code = code.rawValue
        self.message = message
    }
}
