import EngineStoreWire

/// An error answered to a client as an error frame. Messages never contain secrets.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var retryable: Bool
    public var field: String?

    public init(_ code: ErrorCode, _ message: String, retryable: Bool? = nil, field: String? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable ?? code.isRetryableByDefault
        self.field = field
    }

    public static func invalid(_ field: String, _ reason: String) -> ServiceError {
        ServiceError(.invalidArgument, "\(field): \(reason)", field: field)
    }

    /// Broken encoding is a protocol error; a well-formed payload with a bad field is invalid_argument.
    public init(wire: WireError) {
        switch wire {
        case .truncated, .varintOverflow, .unknownWireType, .invalidFieldNumber, .nestingTooDeep,
             .frameTooShort, .frameTooLarge, .unknownFrameKind:
            self.init(.protocolError, wire.description)
        default:
            self.init(.invalidArgument, wire.description, field: wire.field)
        }
    }

    public var payload: ErrorPayload {
        ErrorPayload(code: code, message: message, retryable: retryable, field: field)
    }

    public var description: String { "\(code): \(message)" }
}
