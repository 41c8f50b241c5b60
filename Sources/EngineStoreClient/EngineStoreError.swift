/// Every failure a client call can end with. `code` is the server's error code, or `unavailable`
/// for connection problems and `deadline_exceeded` when the call's deadline passed.
public struct EngineStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    /// True when retrying with the same idempotency key is safe and may succeed.
    public var retryable: Bool
    /// The request field the server complained about, if any.
    public var field: String?

    public init(code: ErrorCode, message: String, retryable: Bool? = nil, field: String? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable ?? code.isRetryableByDefault
        self.field = field
    }

    init(payload: ErrorPayload) {
        self.init(code: payload.errorCode, message: payload.message, retryable: payload.retryable, field: payload.field)
    }

    static func connection(_ message: String) -> EngineStoreError {
        EngineStoreError(code: .unavailable, message: message, retryable: true)
    }

    public var description: String {
        "\(code): \(message)" + (field.map { " (field \($0))" } ?? "")
    }
}
