import CHiredis
import Glibc

/// One blocking hiredis connection to one Redis server. Not thread-safe: owned by one thread at a time.
final class RedisNode {
    private let context: UnsafeMutablePointer<redisContext>
    let endpoint: RedisEndpoint

    /// Connects, authenticates and selects the database; every later command is bounded by `timeoutMs`.
    init(endpoint: RedisEndpoint, timeoutMs: Int = 2000) throws(RedisError) {
        self.endpoint = endpoint
        let tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int((timeoutMs % 1000) * 1000))
        let ctx: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): ctx = redisConnectWithTimeout(host, Int32(port), tv)
        case .unix(let path): ctx = redisConnectUnixWithTimeout(path, tv)
        case .cluster: preconditionFailure("a cluster endpoint is opened by RedisCluster")
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
    var isBroken: Bool { context.pointee.err != 0 }

    /// Sends one command and waits for its reply. An error reply is returned, not thrown.
    func command(_ args: [String]) throws(RedisError) -> RedisReply {
        try pipeline([args])[0]
    }

    /// Sends all commands in one write and reads their replies in order (one round trip).
    func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        try pipeline(encoded: RESP.commands(commands), count: commands.count)
    }

    /// As `pipeline(_:)`, for `count` commands already in RESP.
    func pipeline(encoded block: [UInt8], count: Int) throws(RedisError) -> [RedisReply] {
        guard count > 0 else { return [] }
        try send(encoded: block)
        return try receive(count)
    }

    /// Writes the commands out without waiting for their replies (so several nodes work at once). They
    /// are encoded once, into one block (`RESP`), and handed to hiredis's output buffer as such.
    func send(_ commands: [[String]]) throws(RedisError) {
        guard !commands.isEmpty else { return }
        try send(encoded: RESP.commands(commands))
    }

    /// Writes commands already in RESP.
    func send(encoded block: [UInt8]) throws(RedisError) {
        guard !block.isEmpty else { return }
        let rc = block.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        guard rc == REDIS_OK else { throw connectionError() }
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw connectionError() }
        }
    }

    /// Reads `count` replies of commands sent before.
    func receive(_ count: Int) throws(RedisError) -> [RedisReply] {
        var replies: [RedisReply] = []
        replies.reserveCapacity(count)
        for _ in 0..<count {
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
