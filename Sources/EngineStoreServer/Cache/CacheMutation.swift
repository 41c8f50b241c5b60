/// One change to Redis that follows a committed Postgres write. Values are plain data so that a later
/// version can store them in a durable outbox and replay them after a crash.
enum CacheMutation: Sendable, Equatable {
    /// HSET key field value; EXPIRE key ttl
    case hashSet(key: String, field: String, value: String, ttlSeconds: Int)
    /// HDEL key field
    case hashDelete(key: String, field: String)
    /// SET key value EX ttl
    case set(key: String, value: String, ttlSeconds: Int)

    /// The Redis commands, in order.
    var commands: [[String]] {
        switch self {
        case .hashSet(let key, let field, let value, let ttl):
            return [["HSET", key, field, value], ["EXPIRE", key, String(ttl)]]
        case .hashDelete(let key, let field):
            return [["HDEL", key, field]]
        case .set(let key, let value, let ttl):
            return [["SET", key, value, "EX", String(ttl)]]
        }
    }
}
