/// One change to Redis that follows a committed Postgres write. Values are plain data so that a later
/// version can store them in a durable outbox and replay them after a crash.
enum CacheMutation: Sendable, Equatable {
    /// HSET key field value; EXPIRE key ttl
    case hashSet(key: String, field: String, value: String, ttlSeconds: Int)
    /// HDEL key field
    case hashDelete(key: String, field: String)
    /// SET key value EX ttl
    case set(key: String, value: String, ttlSeconds: Int)
    /// LPUSH key value; LTRIM key 0 max-1; EXPIRE key ttl
    case listPush(key: String, value: String, maxLength: Int, ttlSeconds: Int)
    /// XADD key MAXLEN ~ maxLength * field value …
    case streamAdd(key: String, maxLength: Int, fields: [(String, String)])
    /// Sets one hash field; if the hash does not exist (expired, never built), builds it from
    /// `snapshot` (every field, taken from Postgres in the same transaction) so a reader never finds
    /// a partial hash; with an empty snapshot a missing hash is left alone (see `isConditional`).
    case hashSetOrBuild(key: String, field: String, value: String, snapshot: [(String, String)], ttlSeconds: Int)
    /// LPUSH + LTRIM onto an existing list; a missing list is built from `snapshot` (newest first).
    case listPushOrBuild(key: String, value: String, snapshot: [String], maxLength: Int, ttlSeconds: Int)
    /// ZADD key score member … (no TTL: the leaderboard lives until replaced)
    case sortedSetAdd(key: String, members: [(Double, String)])
    /// Atomically replaces a whole sorted set (MULTI DEL ZADD EXEC)
    case replaceSortedSet(key: String, members: [(Double, String)])
    /// Atomically replaces a whole hash (a refill from Postgres): MULTI DEL HSET EXPIRE EXEC
    case replaceHash(key: String, fields: [(String, String)], ttlSeconds: Int)
    /// Atomically replaces a whole list, in order (a refill from Postgres)
    case replaceList(key: String, values: [String], ttlSeconds: Int)

    static func == (a: CacheMutation, b: CacheMutation) -> Bool {
        a.commands == b.commands
    }

    /// A mutation Redis may decline (reply 0): its write's outbox rows must stay for the relay.
    var isConditional: Bool {
        if case .hashSetOrBuild(_, _, _, let snapshot, _) = self { return snapshot.isEmpty }
        return false
    }

    /// The Redis commands, in order.
    var commands: [[String]] {
        switch self {
        case .hashSet(let key, let field, let value, let ttl):
            return [["HSET", key, field, value], ["EXPIRE", key, String(ttl)]]
        case .hashDelete(let key, let field):
            return [["HDEL", key, field]]
        case .set(let key, let value, let ttl):
            return [["SET", key, value, "EX", String(ttl)]]
        case .listPush(let key, let value, let max, let ttl):
            return [["LPUSH", key, value], ["LTRIM", key, "0", String(max - 1)], ["EXPIRE", key, String(ttl)]]
        case .streamAdd(let key, let max, let fields):
            return [["XADD", key, "MAXLEN", "~", String(max), "*"] + fields.flatMap { [$0.0, $0.1] }]
        case .hashSetOrBuild(let key, let field, let value, let snapshot, let ttl):
            return [["EVAL", CacheScripts.hashSetOrBuild, "1", key, String(ttl), field, value]
                    + snapshot.flatMap { [$0.0, $0.1] }]
        case .listPushOrBuild(let key, let value, let snapshot, let max, let ttl):
            return [["EVAL", CacheScripts.listPushOrBuild, "1", key, String(ttl), String(max), value] + snapshot]
        case .sortedSetAdd(let key, let members):
            guard !members.isEmpty else { return [] }
            return [["ZADD", key] + members.flatMap { ["\($0.0)", $0.1] }]
        case .replaceSortedSet(let key, let members):
            guard !members.isEmpty else { return [["DEL", key]] }
            return [["MULTI"], ["DEL", key], ["ZADD", key] + members.flatMap { ["\($0.0)", $0.1] }, ["EXEC"]]
        case .replaceHash(let key, let fields, let ttl):
            guard !fields.isEmpty else { return [["DEL", key]] }
            return [["MULTI"], ["DEL", key], ["HSET", key] + fields.flatMap { [$0.0, $0.1] },
                    ["EXPIRE", key, String(ttl)], ["EXEC"]]
        case .replaceList(let key, let values, let ttl):
            guard !values.isEmpty else { return [["DEL", key]] }
            return [["MULTI"], ["DEL", key], ["RPUSH", key] + values, ["EXPIRE", key, String(ttl)], ["EXEC"]]
        }
    }
}

/// Lua run atomically by Redis; each touches one key, so they work unchanged on Redis Cluster.
enum CacheScripts {
    /// KEYS[1] hash; ARGV: ttl, field, value, then snapshot field/value pairs.
    /// Returns 0 (and writes nothing) when the hash is missing and no snapshot came: the writer
    /// then leaves the key to the outbox relay, which rebuilds it whole from Postgres.
    static let hashSetOrBuild = """
        if redis.call('EXISTS', KEYS[1]) == 1 then
          redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
        elseif #ARGV >= 5 then
          redis.call('HSET', KEYS[1], unpack(ARGV, 4))
        else
          return 0
        end
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        return 1
        """

    /// KEYS[1] list; ARGV: ttl, max length, newest value, then the snapshot, newest first.
    static let listPushOrBuild = """
        if redis.call('EXISTS', KEYS[1]) == 1 or #ARGV < 4 then
          redis.call('LPUSH', KEYS[1], ARGV[3])
          redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
        else
          redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
        end
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        return 1
        """
}
