/// Redis Cluster's key-to-slot rules (https://redis.io/docs/reference/cluster-spec/): CRC16-CCITT
/// (XMODEM) of the key, or of its hash tag, modulo 16384.
public enum RedisClusterSlot {
    public static let count = 16384

    public static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }

    /// The slot of `key`: only the part between the first `{` and the next `}` counts when that part
    /// is not empty (the hash tag).
    public static func slot(of key: String) -> Int {
        let bytes = Array(key.utf8)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
           let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            return Int(crc16(bytes[(open + 1)..<close])) % count
        }
        return Int(crc16(bytes)) % count
    }

    /// Where a command goes on a cluster.
    public enum Route: Sendable, Equatable {
        /// The master that serves this slot.
        case slot(Int)
        /// Every master (a command about the whole data set or about every node's state).
        case everyMaster
        /// Any one node (no key, and the answer does not depend on the node).
        case anyNode
        /// Never sent: the client cannot route it (keys in several slots, a per-node cursor).
        case refused(String)
    }

    /// Commands sent to every master; their replies are combined (DBSIZE: sum, KEYS: concatenation,
    /// others: the first error, else the first reply).
    static let broadcast: Set<String> = ["PING", "DBSIZE", "KEYS", "SCRIPT", "FLUSHDB", "FLUSHALL", "CONFIG"]
    /// Commands whose key is the second argument (a subcommand comes first).
    static let keyAfterSubcommand: Set<String> = ["OBJECT", "MEMORY", "XINFO"]
    static let keyless: Set<String> = ["INFO", "TIME", "ECHO", "CLUSTER", "CLIENT", "COMMAND", "ROLE", "LASTSAVE",
                                       "SLOWLOG", "LATENCY", "RANDOMKEY", "WAIT", "DEBUG", "READONLY", "READWRITE"]

    /// The keys a command touches, as far as routing needs them: EVAL/EVALSHA's declared keys, the
    /// key after STREAMS for XREAD, else the first key argument.
    public static func route(_ args: [String]) -> Route {
        guard let first = args.first else { return .refused("empty command") }
        let name = first.uppercased()
        if broadcast.contains(name) { return .everyMaster }
        if keyless.contains(name) { return .anyNode }
        if name == "SCAN" { return .refused("SCAN cursors belong to one node; scan each master on its own") }
        var keys: [String]
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard args.count >= 3, let n = Int(args[2]), n >= 0, args.count >= 3 + n else { return .refused("bad numkeys") }
            keys = Array(args[3..<(3 + n)])
            if keys.isEmpty { return .anyNode }
        case "XREAD", "XREADGROUP":
            guard let s = args.firstIndex(where: { $0.uppercased() == "STREAMS" }), s + 1 < args.count else { return .anyNode }
            keys = [args[s + 1]]
        default:
            let at = keyAfterSubcommand.contains(name) ? 2 : 1
            guard args.count > at else { return .anyNode }
            keys = [args[at]]
        }
        let slot = slot(of: keys[0])
        // A script runs on one node: every key it declares must be in the same slot.
        guard keys.dropFirst().allSatisfy({ self.slot(of: $0) == slot }) else {
            return .refused("CROSSSLOT Keys in request don't hash to the same slot (client-side check)")
        }
        return .slot(slot)
    }
}

/// A `MOVED` or `ASK` error reply: the slot is served (for good, or for this one command) elsewhere.
public struct RedisRedirect: Sendable, Equatable {
    public enum Kind: Sendable { case moved, ask }
    public let kind: Kind
    public let slot: Int
    public let node: RedisEndpoint.Seed

    /// Parses `MOVED 3999 127.0.0.1:6381`; an empty host (Redis 7 may send `:6381`) means `replyingHost`.
    public init?(error: String, replyingHost: String = "127.0.0.1") {
        let parts = error.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), (0..<RedisClusterSlot.count).contains(slot),
              let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]) else { return nil }
        switch parts[0] {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        let host = String(parts[2][..<colon])
        self.slot = slot
        self.node = RedisEndpoint.Seed(host: host.isEmpty ? replyingHost : host, port: port)
    }
}

/// Which master serves each slot, from a `CLUSTER SLOTS` reply.
struct RedisSlotMap: Sendable {
    private(set) var masters: [RedisEndpoint.Seed] = []
    /// Index into `masters` per slot; -1 where no master serves it.
    private var owner = [Int16](repeating: -1, count: RedisClusterSlot.count)

    /// nil unless the reply has the documented shape. An empty host means `replyingHost`.
    init?(clusterSlots reply: RedisReply, replyingHost: String) {
        guard let ranges = reply.array else { return nil }
        for range in ranges {
            guard let r = range.array, r.count >= 3, let lo = r[0].integer, let hi = r[1].integer,
                  lo >= 0, hi >= lo, hi < Int64(RedisClusterSlot.count),
                  let master = r[2].array, master.count >= 2, let host = master[0].text, let port = master[1].integer else { return nil }
            let seed = RedisEndpoint.Seed(host: host.isEmpty || host == "?" ? replyingHost : host, port: Int(port))
            let index: Int
            if let i = masters.firstIndex(of: seed) { index = i } else { index = masters.count; masters.append(seed) }
            for s in Int(lo)...Int(hi) { owner[s] = Int16(index) }
        }
        guard !masters.isEmpty else { return nil }
    }

    func master(of slot: Int) -> RedisEndpoint.Seed? {
        let i = owner[slot]
        return i < 0 ? nil : masters[Int(i)]
    }

    /// Points one slot at another master (after MOVED, until the next full refresh).
    mutating func move(_ slot: Int, to seed: RedisEndpoint.Seed) {
        let index: Int
        if let i = masters.firstIndex(of: seed) { index = i } else { index = masters.count; masters.append(seed) }
        owner[slot] = Int16(index)
    }
}
