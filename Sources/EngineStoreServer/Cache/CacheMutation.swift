import Hiredis

/// One change to Redis that follows a committed Postgres write. Values are plain data: the direct
/// path computes them at commit time, the relay, Hydrate and the read path from Postgres later.
///
/// Documents derived from mutable rows are versioned (see `CacheVersion`): their scripts write only
/// when the incoming version is not older than the one Redis holds, so writers may reach Redis in any
/// order (two Postgres workers, the relay, a refill, another instance) and the newest value stays.
/// The recent-trades list needs no version: trades never change, so the list is the newest 100 of
/// every trade merged into it, whatever the order. docs/cache-consistency.md has the argument.
enum CacheMutation: Sendable, Equatable {
    /// SET key value EX ttl (values with a single source and no ordering: market data, guards)
    case set(key: String, value: String, ttlSeconds: Int)
    /// HSET key field value; EXPIRE key ttl (market data)
    case hashSet(key: String, field: String, value: String, ttlSeconds: Int)
    /// XADD key MAXLEN ~ maxLength * field value …
    case streamAdd(key: String, maxLength: Int, fields: [(String, String)])
    /// A string document with a version (ttl 0: no TTL).
    case versionedSet(key: String, versionKey: String, value: String, version: String, ttlSeconds: Int)
    /// One field of an existing positions hash. A missing hash is declined (reply 0): the relay
    /// rebuilds it whole, so a reader never sees a partial hash.
    case positionSet(key: String, versionKey: String, field: String, value: String, version: String, ttlSeconds: Int)
    /// Several fields of one positions hash, each as `positionSet` (one script call: `coalesced`).
    case positionSets(key: String, versionKey: String, fields: [(field: String, version: String, value: String)], ttlSeconds: Int)
    /// A closed position: HDEL, and its version kept as a tombstone so an older value cannot return.
    case positionDelete(key: String, versionKey: String, field: String, version: String, ttlSeconds: Int)
    /// A model's positions as Postgres holds them: open fields and the latest version of closed ones.
    case positionsSync(key: String, versionKey: String, open: [(field: String, version: String, value: String)],
                       closed: [(field: String, version: String)], mode: SyncMode, ttlSeconds: Int)
    /// Trades merged into the recent list (newest first by closed_at_ms, then id; at most maxLength).
    /// `drop`: ids of entries to remove (trades Postgres does not have; repair only).
    case tradesMerge(key: String, items: [String], maxLength: Int, mode: ListMode, ttlSeconds: Int, drop: [String] = [])
    /// Messages merged into `conversations:<model>` (as tradesMerge; the script is in ConversationRPC.swift).
    case conversationsMerge(key: String, items: [String], maxLength: Int, mode: ListMode, ttlSeconds: Int, drop: [String] = [])
    /// The whole leaderboard sorted set, replaced if `version` is newer (no TTL).
    case leaderboardReplace(key: String, versionKey: String, members: [(Double, String)], version: String)

    enum SyncMode: String, Sendable {
        /// Only if the hash is missing (a read refill).
        case build
        /// Every field applied where newer; a missing hash is built (the relay).
        case merge
        /// As merge, and fields Postgres has no row for are removed (Hydrate, repair).
        case replace
    }

    enum ListMode: String, Sendable {
        /// Only onto an existing list; a missing one is declined (reply 0) for the relay to build.
        case existing
        /// A missing list is built from the items (which must then be the newest 100 from Postgres).
        case build
    }

    static func == (a: CacheMutation, b: CacheMutation) -> Bool {
        a.commands == b.commands
    }

    /// A mutation Redis may decline (reply 0): its write's outbox rows go to the relay at once.
    var isConditional: Bool {
        switch self {
        case .positionSet, .positionSets: true
        case .tradesMerge(_, _, _, let mode, _, _), .conversationsMerge(_, _, _, let mode, _, _): mode == .existing
        default: false
        }
    }

    /// A stream entry: the one mutation that is not idempotent (applied twice, it is there twice).
    var isAppend: Bool {
        if case .streamAdd = self { return true }
        return false
    }

    /// The document key it writes.
    var key: String {
        switch self {
        case .set(let key, _, _), .hashSet(let key, _, _, _), .streamAdd(let key, _, _), .versionedSet(let key, _, _, _, _),
             .positionSet(let key, _, _, _, _, _), .positionSets(let key, _, _, _), .positionDelete(let key, _, _, _, _),
             .positionsSync(let key, _, _, _, _, _), .tradesMerge(let key, _, _, _, _, _), .leaderboardReplace(let key, _, _, _),
             .conversationsMerge(let key, _, _, _, _, _):
            key
        }
    }

    /// The Redis commands, in order.
    var commands: [[String]] {
        switch self {
        case .set(let key, let value, let ttl):
            return [["SET", key, value, "EX", String(ttl)]]
        case .hashSet(let key, let field, let value, let ttl):
            return [["HSET", key, field, value], ["EXPIRE", key, String(ttl)]]
        case .streamAdd(let key, let max, let fields):
            return [["XADD", key, "MAXLEN", "~", String(max), "*"] + fields.flatMap { [$0.0, $0.1] }]
        case .versionedSet(let key, let versionKey, let value, let version, let ttl):
            return [["EVAL", CacheScripts.versionedSet, "2", key, versionKey, value, version, String(ttl)]]
        case .positionSet(let key, _, _, _, _, _), .positionSets(let key, _, _, _):
            let write = positionWrite!
            return [["EVAL", CacheScripts.positionSet, "2", key, write.versionKey, String(write.ttl)]
                    + write.fields.flatMap { [$0.field, $0.version, $0.value] }]
        case .positionDelete(let key, let versionKey, let field, let version, let ttl):
            return [["EVAL", CacheScripts.positionDelete, "2", key, versionKey, String(ttl), field, version]]
        case .positionsSync(let key, let versionKey, let open, let closed, let mode, let ttl):
            return [["EVAL", CacheScripts.positionsSync, "2", key, versionKey, String(ttl), mode.rawValue, String(open.count)]
                    + open.flatMap { [$0.field, $0.version, $0.value] } + closed.flatMap { [$0.field, $0.version] }]
        case .tradesMerge(let key, let items, let max, let mode, let ttl, let drop):
            return [["EVAL", CacheScripts.tradesMerge, "1", key, String(ttl), String(max), mode.rawValue, String(items.count)]
                    + items + drop]
        case .conversationsMerge(let key, let items, let max, let mode, let ttl, let drop):
            return [["EVAL", CacheScripts.conversationsMerge, "1", key, String(ttl), String(max), mode.rawValue, String(items.count)]
                    + items + drop]
        case .leaderboardReplace(let key, let versionKey, let members, let version):
            return [["EVAL", CacheScripts.leaderboardReplace, "2", key, versionKey, version]
                    + members.flatMap { ["\($0.0)", $0.1] }]
        }
    }
}

extension CacheMutation {
    /// `list` with the position writes of one hash that follow each other (nothing else writes that
    /// hash in between, and no field twice) as one `positionSets`: a batch's saves of one model cost
    /// Redis one script call instead of one each. Order is kept for every key.
    static func coalesced(_ list: [CacheMutation]) -> [CacheMutation] {
        // Most writes hold one position write or none (trade events, a close): nothing to build.
        var sets = 0
        for m in list { if case .positionSet = m { sets += 1 } }
        guard sets > 1 else { return list }
        /// A position write in `out` and the fields it has taken so far.
        struct Group {
            let at: Int, versionKey: String, ttl: Int
            var fields: [(field: String, version: String, value: String)]
        }
        var out: [CacheMutation] = []
        out.reserveCapacity(list.count)
        var groups: [Group] = []  // mutated in place: appending a field copies nothing
        var open: [String: Int] = [:]  // hash → its group that may take more fields
        for m in list {
            guard case .positionSet(let key, let versionKey, let field, let value, let version, let ttl) = m else {
                open[m.key] = nil
                out.append(m)
                continue
            }
            if let g = open[key], groups[g].versionKey == versionKey, groups[g].ttl == ttl,
               !groups[g].fields.contains(where: { $0.field == field }) {
                groups[g].fields.append((field, version, value))
                continue
            }
            open[key] = groups.count
            groups.append(Group(at: out.count, versionKey: versionKey, ttl: ttl, fields: [(field, version, value)]))
            out.append(m)
        }
        for g in groups where g.fields.count > 1 {
            out[g.at] = .positionSets(key: out[g.at].key, versionKey: g.versionKey, fields: g.fields, ttlSeconds: g.ttl)
        }
        return out
    }

    /// A position write's version hash, fields and TTL (`positionSet`: one field); nil for other kinds.
    var positionWrite: (versionKey: String, fields: [(field: String, version: String, value: String)], ttl: Int)? {
        switch self {
        case .positionSet(_, let versionKey, let field, let value, let version, let ttl): (versionKey, [(field, version, value)], ttl)
        case .positionSets(_, let versionKey, let fields, let ttl): (versionKey, fields, ttl)
        default: nil
        }
    }

    var commandCount: Int {
        if case .hashSet = self { return 2 }
        return 1
    }

    /// `commands` written straight in RESP: the cache writer's hot path, where building the argument
    /// lists and freeing them again was a third of its thread's samples (trade events).
    func appendRESP(to out: inout [UInt8]) {
        func header(_ n: Int) { RESP.appendCommandHeader(arguments: n, to: &out) }
        func arg(_ s: String) { RESP.appendArgument(s, to: &out) }
        func arg(_ n: Int) { RESP.appendArgument(n, to: &out) }
        switch self {
        case .set(let key, let value, let ttl):
            header(5); arg("SET"); arg(key); arg(value); arg("EX"); arg(ttl)
        case .hashSet(let key, let field, let value, let ttl):
            header(4); arg("HSET"); arg(key); arg(field); arg(value)
            header(3); arg("EXPIRE"); arg(key); arg(ttl)
        case .streamAdd(let key, let max, let fields):
            header(6 + 2 * fields.count); arg("XADD"); arg(key); arg("MAXLEN"); arg("~"); arg(max); arg("*")
            for (name, value) in fields { arg(name); arg(value) }
        case .versionedSet(let key, let versionKey, let value, let version, let ttl):
            header(8); arg("EVAL"); arg(CacheScripts.versionedSet); arg(2); arg(key); arg(versionKey); arg(value); arg(version); arg(ttl)
        case .positionSet(let key, let versionKey, let field, let value, let version, let ttl):
            // The lone field, written without building the `positionWrite` array (the hot case).
            header(9); arg("EVAL"); arg(CacheScripts.positionSet); arg(2); arg(key); arg(versionKey); arg(ttl); arg(field); arg(version)
            arg(value)
        case .positionSets(let key, let versionKey, let fields, let ttl):
            header(6 + 3 * fields.count); arg("EVAL"); arg(CacheScripts.positionSet); arg(2); arg(key); arg(versionKey); arg(ttl)
            for f in fields { arg(f.field); arg(f.version); arg(f.value) }
        case .positionDelete(let key, let versionKey, let field, let version, let ttl):
            header(8); arg("EVAL"); arg(CacheScripts.positionDelete); arg(2); arg(key); arg(versionKey); arg(ttl); arg(field); arg(version)
        case .positionsSync(let key, let versionKey, let open, let closed, let mode, let ttl):
            header(8 + 3 * open.count + 2 * closed.count)
            arg("EVAL"); arg(CacheScripts.positionsSync); arg(2); arg(key); arg(versionKey); arg(ttl); arg(mode.rawValue); arg(open.count)
            for o in open { arg(o.field); arg(o.version); arg(o.value) }
            for c in closed { arg(c.field); arg(c.version) }
        case .tradesMerge(let key, let items, let max, let mode, let ttl, let drop):
            header(8 + items.count + drop.count)
            arg("EVAL"); arg(CacheScripts.tradesMerge); arg(1); arg(key); arg(ttl); arg(max); arg(mode.rawValue); arg(items.count)
            items.forEach(arg); drop.forEach(arg)
        case .conversationsMerge(let key, let items, let max, let mode, let ttl, let drop):
            header(8 + items.count + drop.count)
            arg("EVAL"); arg(CacheScripts.conversationsMerge); arg(1); arg(key); arg(ttl); arg(max); arg(mode.rawValue); arg(items.count)
            items.forEach(arg); drop.forEach(arg)
        case .leaderboardReplace:
            // A rebuild, now and then: its argument list is built as for a cluster.
            for command in commands { RESP.appendCommand(command, to: &out) }
        }
    }
}

/// What Redis made of one write: the mutations behind one set of outbox rows, whose rows are
/// deleted, handed to the relay at once, or left for it.
enum CacheWriteOutcome: Equatable {
    /// Every command taken: the rows are done.
    case applied
    /// Taken, but a conditional mutation was declined (a missing hash or list): rebuild soon.
    case declined
    /// An error reply (OOM, READONLY, WRONGTYPE, …): the rows stay for the relay.
    case refused(String)

    /// Each command of a write with the mutation it belongs to and its reply (nil: none came). A
    /// stream entry Redis took makes the write applied even if another of its commands was refused:
    /// sending the row again would add the entry twice (the other documents of an event row are its
    /// ingest guard, a 24 h hint).
    static func of(_ answered: [(mutation: CacheMutation, reply: RedisReply?)]) -> CacheWriteOutcome {
        var tally = Tally()
        for (m, reply) in answered { tally.add(m, reply) }
        return tally.outcome
    }

    /// `of`, one command at a time (the cache writer folds the replies without pairing them up).
    struct Tally {
        private var appended = false, declined = false
        private var error: String?

        mutating func add(_ m: CacheMutation, _ reply: RedisReply?) {
            switch reply {
            case nil: error = error ?? "no reply"
            case .error(let e)?: error = error ?? e
            case .integer(0)? where m.isConditional: declined = true
            default: if m.isAppend { appended = true }
            }
        }

        var outcome: CacheWriteOutcome {
            if let error, !appended { return .refused(error) }
            return declined ? .declined : .applied
        }
    }
}

extension RedisConnection {
    /// Sends several writes in one round trip (each mutation written straight in RESP); each write
    /// gets its own outcome. Throws only when the connection failed: then nothing is known of any write.
    func apply(_ writes: [[CacheMutation]]) throws(RedisError) -> [CacheWriteOutcome] {
        var count = 0
        for write in writes { for m in write { count += m.commandCount } }
        let replies = try pipeline(count: count, writing: { out in
            for write in writes { for m in write { m.appendRESP(to: &out) } }
        }, commands: { writes.flatMap { $0.flatMap(\.commands) } })
        var outcomes: [CacheWriteOutcome] = []
        outcomes.reserveCapacity(writes.count)
        var i = 0
        for write in writes {
            var tally = CacheWriteOutcome.Tally()
            for m in write {
                for _ in 0..<m.commandCount {
                    tally.add(m, i < replies.count ? replies[i] : nil)
                    i += 1
                }
            }
            outcomes.append(tally.outcome)
        }
        return outcomes
    }
}

/// A value is written when its version is not older than the one Redis holds: an equal version is
/// the same value, so writing it again is harmless and lets a repair overwrite a corrupted copy.
/// Versions are fixed-width decimal strings, compared as strings: a sequence value, or for the last
/// decision (executed_at µs, id). Equal width per key, so string order is numeric order.
enum CacheVersion {
    static func of(_ v: Int64) -> String {
        let s = String(max(v, 0))
        return String(repeating: "0", count: max(0, 20 - s.count)) + s
    }
}

/// Lua run atomically by Redis. Each touches one document and its version companion, which share a
/// hash slot, so they run unchanged on Redis Cluster.
enum CacheScripts {
    /// `newer(a, b)`: version a is newer than b (nil b is older than anything).
    private static let newer = """
        local function newer(a, b)
          if not b then return true end
          if #a ~= #b then return #a > #b end
          return a > b
        end
        """

    /// KEYS doc, ver; ARGV value, version, ttl.
    static let versionedSet = newer + """

        local cur = redis.call('GET', KEYS[2])
        if cur and newer(cur, ARGV[2]) then return 1 end
        if tonumber(ARGV[3]) > 0 then
          redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
          redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
        else
          redis.call('SET', KEYS[1], ARGV[1])
          redis.call('SET', KEYS[2], ARGV[2])
        end
        return 1
        """

    /// KEYS hash, ver; ARGV ttl, then field, version, value for each field (one for `positionSet`,
    /// several for `positionSets`). 0 when the hash is missing, unless the version
    /// hash marks it as known empty (`~empty`: its last field was deleted, or a rebuild found no open
    /// position). Redis drops an empty hash, so without the mark every open after a model's last
    /// close went to the relay for a rebuild from Postgres. `~` is in no symbol (Validate.symbol).
    static let positionSet = newer + """

        local had = redis.call('EXISTS', KEYS[1]) == 1
        if not had and not redis.call('HGET', KEYS[2], '~empty') then return 0 end
        -- (field, version, value) from ARGV[2] on: each written unless its stored version is newer.
        local fields = {}
        for i = 2, #ARGV, 3 do fields[#fields + 1] = ARGV[i] end
        local cur = redis.call('HMGET', KEYS[2], unpack(fields))
        local values, versions = {}, {}
        for k = 1, #fields do
          local i = 3 * k - 1
          if not (cur[k] and newer(cur[k], ARGV[i + 1])) then
            values[#values + 1] = ARGV[i]; values[#values + 1] = ARGV[i + 2]
            versions[#versions + 1] = ARGV[i]; versions[#versions + 1] = ARGV[i + 1]
          end
        end
        local wrote = #values > 0
        if wrote then
          redis.call('HSET', KEYS[1], unpack(values))
          redis.call('HSET', KEYS[2], unpack(versions))
        end
        -- The hash is there now (it was, or this wrote a field), so it is no longer known empty.
        if had or wrote then redis.call('HDEL', KEYS[2], '~empty') end
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        redis.call('EXPIRE', KEYS[2], ARGV[1])
        return 1
        """

    /// KEYS hash, ver; ARGV ttl, field, version. The version stays as a tombstone. Deleting the last
    /// field of a hash that was there marks it known empty (see positionSet).
    static let positionDelete = newer + """

        local had = redis.call('EXISTS', KEYS[1]) == 1
        local cur = redis.call('HGET', KEYS[2], ARGV[2])
        if cur == false then cur = nil end
        if not (cur and newer(cur, ARGV[3])) then
          redis.call('HDEL', KEYS[1], ARGV[2])
          redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
          if had and redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[2], '~empty', '1') end
          redis.call('EXPIRE', KEYS[2], ARGV[1])
        end
        return 1
        """

    /// KEYS hash, ver; ARGV ttl, mode, n, then n (field, version, value) open, then (field, version) closed.
    /// One HMGET for every kept version and bulk HSET/HDEL (a model may hold hundreds of positions;
    /// a call per field would make the relay's rebuilds expensive).
    static let positionsSync = newer + """

        local exists = redis.call('EXISTS', KEYS[1]) == 1
        if ARGV[2] == 'build' and exists then return 1 end
        local n = tonumber(ARGV[3])
        local names, versions, values = {}, {}, {}
        local i = 4
        for k = 1, n do
          names[k], versions[k], values[k] = ARGV[i], ARGV[i + 1], ARGV[i + 2]
          i = i + 3
        end
        local open = n
        while i <= #ARGV do
          names[#names + 1], versions[#versions + 1] = ARGV[i], ARGV[i + 1]
          i = i + 2
        end
        local function bulk(cmd, key, list)
          for s = 1, #list, 1000 do
            redis.call(cmd, key, unpack(list, s, math.min(s + 999, #list)))
          end
        end
        local kept = {}
        for s = 1, #names, 1000 do
          local part = redis.call('HMGET', KEYS[2], unpack(names, s, math.min(s + 999, #names)))
          for k = 1, #part do kept[s + k - 1] = part[k] end
        end
        local setDoc, setVer, del, known = {}, {}, {}, {}
        for k = 1, #names do
          local f, v, cur = names[k], versions[k], kept[k]
          known[f] = true
          if cur == false then cur = nil end
          if not (cur and newer(cur, v)) then
            setVer[#setVer + 1] = f
            setVer[#setVer + 1] = v
            if k <= open then
              setDoc[#setDoc + 1] = f
              setDoc[#setDoc + 1] = values[k]
            else
              del[#del + 1] = f
            end
          end
        end
        bulk('HSET', KEYS[1], setDoc)
        bulk('HDEL', KEYS[1], del)
        bulk('HSET', KEYS[2], setVer)
        if ARGV[2] == 'replace' then
          local extra = {}
          for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
            if not known[f] then extra[#extra + 1] = f end
          end
          bulk('HDEL', KEYS[1], extra)
        end
        -- Every slot of the model was given: a hash left empty is known empty (see positionSet).
        if redis.call('EXISTS', KEYS[1]) == 1 then
          redis.call('HDEL', KEYS[2], '~empty')
        else
          redis.call('HSET', KEYS[2], '~empty', '1')
        end
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        redis.call('EXPIRE', KEYS[2], ARGV[1])
        return 1
        """

    /// KEYS list; ARGV ttl, max, mode, n, then n trade JSON items, then ids to drop. The list becomes the newest `max` of
    /// (list ∪ items) by closed_at_ms desc, then id desc (bytewise, as Postgres's COLLATE "C"),
    /// without duplicate ids; entries that are not trade JSON with an id are dropped (by the full merge: the
    /// fast path for one trade newer than the head trusts the list, which only this script writes).
    /// 0 when the list is missing and mode is 'existing'. The one-trade paths read list entries' keys,
    /// and the trade's own, with `peek` (no decode: about 64 → 49 µs of Redis a search-path merge,
    /// `bench/trades-merge`); a trade `peek` cannot read (not the service's JSON) is decoded.
    /// `RecentTradesMergeTests` checks every path.
    static let tradesMerge = """
        local exists = redis.call('EXISTS', KEYS[1]) == 1
        if not exists and ARGV[3] == 'existing' then return 0 end
        local max = tonumber(ARGV[2])
        local function entry(s)
          local ok, d = pcall(cjson.decode, s)
          if ok and type(d) == 'table' and type(d.id) == 'string' and type(d.closed_at_ms) == 'number' then
            return { t = d.closed_at_ms, id = d.id, s = s }
          end
          return nil
        end
        -- A list entry's keys without decoding it (a decode is most of a lookup's cost): entries are
        -- this script's own trade JSON, whose `id` comes last and whose strings escape every quote,
        -- so `"closed_at_ms":` and `,"id":"` occur once, as keys. nil (then the full merge decodes
        -- and checks every entry) for anything else, or an id with an escape.
        local function peek(s)
          if not s then return nil end
          local a = string.find(s, '"closed_at_ms":', 1, true)
          local b = string.find(s, ',"id":"', 1, true)
          if not a or not b or string.sub(s, -2) ~= '"}' then return nil end
          local t = tonumber(string.match(s, '^%-?%d+', a + 15))
          local id = string.sub(s, b + 7, -3)
          if not t or string.find(id, '[\\\\"]') then return nil end
          return { t = t, id = id, s = s }
        end
        local function first(a, b)
          if a.t ~= b.t then return a.t > b.t end
          local la, lb = #a.id, #b.id
          for k = 1, math.min(la, lb) do
            local x, y = string.byte(a.id, k), string.byte(b.id, k)
            if x ~= y then return x > y end
          end
          return la > lb
        end
        local n = tonumber(ARGV[4])
        -- The usual close: one trade, newer than the list's head. The list is kept sorted and without
        -- repeats (only this script writes it), and a trade's closed_at_ms never changes, so a trade
        -- newer than the head is in no entry: push it and trim, instead of decoding every entry.
        -- One trade older than the head (closes arriving a little out of time order): its place is found
        -- by a binary search that decodes about log2(max) entries; a repeat sits just before that place.
        if exists and n == 1 and #ARGV == 5 then
          -- The trade's own keys read as the list's are (the service's JSON; a decode otherwise).
          local e, head = peek(ARGV[5]) or entry(ARGV[5]), redis.call('LINDEX', KEYS[1], 0)
          local h = peek(head)
          if e and h and first(e, h) then
            redis.call('LPUSH', KEYS[1], ARGV[5])
            redis.call('LTRIM', KEYS[1], 0, max - 1)
            redis.call('EXPIRE', KEYS[1], ARGV[1])
            return 1
          end
          local len = redis.call('LLEN', KEYS[1])
          local lo, hi, probed = 1, len, e ~= nil and h ~= nil
          while probed and lo < hi do
            local mid = math.floor((lo + hi) / 2)
            local m = peek(redis.call('LINDEX', KEYS[1], mid))
            if not m then probed = false elseif first(e, m) then hi = mid else lo = mid + 1 end
          end
          local before = probed and peek(redis.call('LINDEX', KEYS[1], lo - 1))
          if e and before then
            if not (before.t == e.t and before.id == e.id) and lo < max then
              if lo == len then
                redis.call('RPUSH', KEYS[1], ARGV[5])
              else
                redis.call('LINSERT', KEYS[1], 'BEFORE', redis.call('LINDEX', KEYS[1], lo), ARGV[5])
              end
              redis.call('LTRIM', KEYS[1], 0, max - 1)
            end
            redis.call('EXPIRE', KEYS[1], ARGV[1])
            return 1
          end
        end
        local seen = {}
        for k = 5 + n, #ARGV do seen[ARGV[k]] = true end
        local current = exists and redis.call('LRANGE', KEYS[1], 0, -1) or {}
        local all = {}
        for _, s in ipairs(current) do
          local e = entry(s)
          if e and not seen[e.id] then seen[e.id] = true; all[#all + 1] = e end
        end
        for k = 5, 4 + n do
          local e = entry(ARGV[k])
          if e and not seen[e.id] then seen[e.id] = true; all[#all + 1] = e end
        end
        table.sort(all, first)
        local keep = math.min(#all, max)
        local same = keep == #current
        if same then
          for k = 1, keep do
            if all[k].s ~= current[k] then same = false; break end
          end
        end
        if not same then
          redis.call('DEL', KEYS[1])
          if keep > 0 then
            local values = {}
            for k = 1, keep do values[k] = all[k].s end
            redis.call('RPUSH', KEYS[1], unpack(values))
          end
        end
        if keep > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
        return 1
        """

    /// KEYS zset, ver; ARGV version, then score/member pairs. Replaced whole when the version is newer.
    static let leaderboardReplace = newer + """

        local cur = redis.call('GET', KEYS[2])
        if cur and newer(cur, ARGV[1]) then return 1 end
        redis.call('DEL', KEYS[1])
        if #ARGV > 1 then redis.call('ZADD', KEYS[1], unpack(ARGV, 2)) end
        redis.call('SET', KEYS[2], ARGV[1])
        return 1
        """
}
