import CHiredis
import Glibc

/// Where Redis listens, parsed from `redis://[:password@]host[:port][/db]` or `unix:///path/to.sock[?db=N]`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address
    public var database: Int
    public var password: String?

    public init(address: Address, database: Int = 0, password: String? = nil) {
        self.address = address
        self.database = database
        self.password = password
    }

    public init?(url: String) {
        if url.hasPrefix("unix://") {
            var rest = String(url.dropFirst("unix://".count))
            var db = 0
            if let q = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: q)...]
                rest = String(rest[..<q])
                for pair in query.split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    if kv.count == 2, kv[0] == "db" { guard let d = Int(kv[1]) else { return nil }; db = d }
                }
            }
            guard rest.hasPrefix("/") else { return nil }
            self.init(address: .unix(path: rest), database: db)
        } else if url.hasPrefix("redis://") {
            var rest = Substring(url.dropFirst("redis://".count))
            var password: String?
            if let at = rest.lastIndex(of: "@") {
                let userinfo = rest[..<at]
                if let colon = userinfo.firstIndex(of: ":") { password = String(userinfo[userinfo.index(after: colon)...]) }
                rest = rest[rest.index(after: at)...]
            }
            var db = 0
            if let slash = rest.firstIndex(of: "/") {
                let d = rest[rest.index(after: slash)...]
                if !d.isEmpty { guard let n = Int(d) else { return nil }; db = n }
                rest = rest[..<slash]
            }
            var host = String(rest)
            var port = 6379
            if let colon = rest.lastIndex(of: ":") {
                guard let p = Int(rest[rest.index(after: colon)...]) else { return nil }
                port = p
                host = String(rest[..<colon])
            }
            if host.isEmpty { host = "127.0.0.1" }
            self.init(address: .tcp(host: host, port: port), database: db, password: password)
        } else {
            return nil
        }
    }

    /// `text` with every occurrence of the password masked (hiredis and Redis error texts pass
    /// through this before they can reach a log).
    public func redact(_ text: String) -> String {
        guard let password, !password.isEmpty else { return text }
        let needle = Array(password.utf8), bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if i + needle.count <= bytes.count, bytes[i..<(i + needle.count)].elementsEqual(needle) {
                out.append(contentsOf: "***".utf8)
                i += needle.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The endpoint without its password, for logs and errors.
    public var description: String {
        switch address {
        case .tcp(let host, let port):
            return "redis://\(password == nil ? "" : ":***@")\(host):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(path)\(database == 0 ? "" : "?db=\(database)")"
        }
    }
}

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

/// One blocking hiredis connection. Not thread-safe: owned by one thread at a time.
public final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    public let endpoint: RedisEndpoint

    /// Connects, authenticates and selects the database; every later command is bounded by `timeoutMs`.
    public init(endpoint: RedisEndpoint, timeoutMs: Int = 2000) throws(RedisError) {
        self.endpoint = endpoint
        let tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int((timeoutMs % 1000) * 1000))
        let ctx: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): ctx = redisConnectWithTimeout(host, Int32(port), tv)
        case .unix(let path): ctx = redisConnectUnixWithTimeout(path, tv)
        }
        guard let ctx else { throw RedisError(kind: .connection, message: "hiredis could not allocate a context") }
        if ctx.pointee.err != 0 {
            let message = endpoint.redact(Self.errorString(ctx))
            redisFree(ctx)
            throw RedisError(kind: .connection, message: "connect to \(endpoint): \(message)")
        }
        redisSetTimeout(ctx, tv)
        context = ctx
        if let password = endpoint.password {
            let reply = try command(["AUTH", password])
            if case .error = reply { throw RedisError(kind: .connection, message: "AUTH refused") }
        }
        if endpoint.database != 0 {
            let reply = try command(["SELECT", String(endpoint.database)])
            if case .error(let e) = reply { throw RedisError(kind: .connection, message: "SELECT: \(endpoint.redact(e))") }
        }
    }

    deinit { redisFree(context) }

    /// True once an I/O error or timeout has put the context in its error state (hiredis then fails
    /// every later command): drop the connection and open a new one.
    public var isBroken: Bool { context.pointee.err != 0 }

    /// Sends one command and waits for its reply. An error reply is returned, not thrown.
    public func command(_ args: [String]) throws(RedisError) -> RedisReply {
        try pipeline([args])[0]
    }

    /// Sends all commands in one write and reads their replies in order (one round trip).
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        for args in commands {
            let rc = withArgv(args) { argc, argv, lens in redisAppendCommandArgv(context, argc, argv, lens) }
            guard rc == REDIS_OK else { throw connectionError() }
        }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw connectionError() }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            var converted = Self.convert(reply)
            // Error replies end up in logs (redis_reply_error): never with the password in them.
            if case .error(let e) = converted, endpoint.password != nil { converted = .error(endpoint.redact(e)) }
            replies.append(converted)
            freeReplyObject(raw)
        }
        return replies
    }

    private func connectionError() -> RedisError {
        RedisError(kind: .connection, message: endpoint.redact(Self.errorString(context)))
    }

    static func errorString(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            let s = String(decoding: bytes, as: UTF8.self)
            return s.isEmpty ? "I/O error (code \(ctx.pointee.err))" : s
        }
    }

    static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let reply = r.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .string(Array(UnsafeRawBufferPointer(start: reply.str, count: Int(reply.len))))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: reply.str, count: Int(reply.len)), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: UnsafeRawBufferPointer(start: reply.str, count: Int(reply.len)), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(reply.integer)
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(reply.elements))
            for i in 0..<Int(reply.elements) {
                if let e = reply.element[i] { items.append(convert(e)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }
}

/// Lays the arguments out in one buffer and calls `body` with argc, argv and argvlen (binary-safe).
func withArgv<R>(_ args: [String], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R) -> R {
    var storage: [UInt8] = []
    var offsets: [Int] = []
    var lengths: [Int] = []
    for a in args {
        offsets.append(storage.count)
        let before = storage.count
        storage.append(contentsOf: a.utf8)
        lengths.append(storage.count - before)
    }
    if storage.isEmpty { storage.append(0) }
    return storage.withUnsafeBufferPointer { buf in
        let base = UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self)
        var argv: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
        return argv.withUnsafeMutableBufferPointer { argvBuf in
            lengths.withUnsafeBufferPointer { lens in
                body(Int32(args.count), argvBuf.baseAddress!, lens.baseAddress!)
            }
        }
    }
}
