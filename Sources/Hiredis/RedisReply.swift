public struct RedisError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Connecting failed or the connection broke (I/O error, timeout, EOF): reconnect.
        case connection
        /// Redis answered with an error reply.
        case reply
    }

    public let kind: Kind
    public let message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// A Redis reply, copied out of hiredis's reply object.
public indirect enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisReply])
    case null
    case error(String)

    public var text: String? {
        switch self {
        case .string(let b): String(decoding: b, as: UTF8.self)
        case .status(let s): s
        case .integer(let i): String(i)
        default: nil
        }
    }

    public var integer: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    public var array: [RedisReply]? {
        if case .array(let a) = self { return a }
        return nil
    }
}
