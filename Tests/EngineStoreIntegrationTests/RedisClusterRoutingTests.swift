@testable import EngineStoreServer
import Hiredis
import Testing

/// Redis Cluster routing without a cluster: slots, keys of a command, redirects, URLs.
@Suite struct RedisClusterRoutingTests {
    @Test func crc16AndSlotsFollowTheClusterSpec() {
        #expect(RedisClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(RedisClusterSlot.slot(of: "foo") == 12182)
        #expect(RedisClusterSlot.slot(of: "bar") == 5061)
        // Hash tags: only the first {…} counts, and only when it is not empty.
        let user = RedisClusterSlot.slot(of: "user1000")
        #expect(RedisClusterSlot.slot(of: "{user1000}.following") == user)
        #expect(RedisClusterSlot.slot(of: "{user1000}.followers") == user)
        #expect(RedisClusterSlot.slot(of: "foo{bar}{zap}") == RedisClusterSlot.slot(of: "bar"))
        #expect(RedisClusterSlot.slot(of: "foo{{bar}}zap") == RedisClusterSlot.slot(of: "{bar"))
        #expect(RedisClusterSlot.slot(of: "foo{}{bar}") == Int(RedisClusterSlot.crc16(Array("foo{}{bar}".utf8))) % 16384)
    }

    @Test func commandsRouteByTheirKeys() {
        #expect(RedisClusterSlot.route(["GET", "foo"]) == .slot(12182))
        #expect(RedisClusterSlot.route(["HSET", "foo", "f", "v"]) == .slot(12182))
        #expect(RedisClusterSlot.route(["EVAL", "return 1", "2", "{a}x", "{a}y", "arg"]) == .slot(RedisClusterSlot.slot(of: "a")))
        #expect(RedisClusterSlot.route(["EVAL", "return 1", "0"]) == .anyNode)
        #expect(RedisClusterSlot.route(["XREAD", "COUNT", "1", "STREAMS", "foo", "0"]) == .slot(12182))
        #expect(RedisClusterSlot.route(["OBJECT", "ENCODING", "foo"]) == .slot(12182))
        #expect(RedisClusterSlot.route(["PING"]) == .everyMaster)
        #expect(RedisClusterSlot.route(["SCRIPT", "LOAD", "return 1"]) == .everyMaster)
        #expect(RedisClusterSlot.route(["DBSIZE"]) == .everyMaster)
        #expect(RedisClusterSlot.route(["INFO"]) == .anyNode)
        guard case .refused = RedisClusterSlot.route(["EVAL", "return 1", "2", "foo", "bar"]) else {
            Issue.record("a script over two slots must be refused"); return
        }
        guard case .refused = RedisClusterSlot.route(["SCAN", "0"]) else { Issue.record("SCAN must be refused"); return }
        guard case .refused = RedisClusterSlot.route(["EVAL", "return 1", "3", "foo"]) else { Issue.record("bad numkeys"); return }
    }

    /// Every script the server runs touches one slot: its document and the version companion.
    @Test func everyCacheScriptTouchesOneSlot() {
        let keys = CacheKeys(namespace: "nof0:")
        let docs = [keys.positions(model: "m-1"), keys.traderState(trader: "t1"), keys.analytics(model: "m-1"),
                    keys.lastDecision(model: "m-1"), keys.leaderboard, keys.leaderboardCache, keys.sinceInception(model: "m-1")]
        for doc in docs {
            let v = keys.version(of: doc)
            let mutations: [CacheMutation] = [
                .versionedSet(key: doc, versionKey: v, value: "{}", version: CacheVersion.of(1), ttlSeconds: 30),
                .positionSet(key: doc, versionKey: v, field: "BTC", value: "{}", version: CacheVersion.of(1), ttlSeconds: 30),
                .positionDelete(key: doc, versionKey: v, field: "BTC", version: CacheVersion.of(1), ttlSeconds: 30),
                .positionsSync(key: doc, versionKey: v, open: [("BTC", CacheVersion.of(1), "{}")], closed: [], mode: .merge, ttlSeconds: 30),
                .tradesMerge(key: doc, items: ["{}"], maxLength: 100, mode: .existing, ttlSeconds: 30),
                .leaderboardReplace(key: doc, versionKey: v, members: [(1, "m")], version: CacheVersion.of(1)),
            ]
            for m in mutations {
                for command in m.commands {
                    #expect(RedisClusterSlot.route(command) == .slot(RedisClusterSlot.slot(of: doc)), "\(doc) \(command[0])")
                }
            }
        }
        #expect(RedisClusterSlot.route(["EVAL", Hydrator.releaseLockScript, "1", "nof0:lock:hydrate", "tok"])
                == .slot(RedisClusterSlot.slot(of: "nof0:lock:hydrate")))
    }

    @Test func redirectsAreParsed() {
        let moved = RedisRedirect(error: "MOVED 3999 127.0.0.1:6381")
        #expect(moved?.kind == .moved && moved?.slot == 3999 && moved?.node == .init(host: "127.0.0.1", port: 6381))
        let ask = RedisRedirect(error: "ASK 12182 10.1.2.3:7000")
        #expect(ask?.kind == .ask && ask?.slot == 12182 && ask?.node == .init(host: "10.1.2.3", port: 7000))
        #expect(RedisRedirect(error: "MOVED 1 :7001", replyingHost: "10.0.0.9")?.node == .init(host: "10.0.0.9", port: 7001))
        #expect(RedisRedirect(error: "MOVED 1 ::1:7001")?.node == .init(host: "::1", port: 7001))
        #expect(RedisRedirect(error: "ERR unknown command") == nil)
        #expect(RedisRedirect(error: "MOVED 99999 127.0.0.1:1") == nil)
        #expect(RedisRedirect(error: "CLUSTERDOWN The cluster is down") == nil)
    }

    @Test func clusterURLs() {
        let e = RedisEndpoint(url: "redis-cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001,cache3")
        #expect(e?.address == .cluster(seeds: [.init(host: "10.0.0.1", port: 7000), .init(host: "10.0.0.2", port: 7001),
                                               .init(host: "cache3", port: 6379)]))
        #expect(e?.password == "s3cret")
        #expect(e?.description == "redis-cluster://:***@10.0.0.1:7000,10.0.0.2:7001,cache3:6379")
        #expect(RedisEndpoint(url: "redis-cluster://127.0.0.1:7000/0") != nil)
        #expect(RedisEndpoint(url: "redis-cluster://127.0.0.1:7000/1") == nil)  // a cluster has db 0 only
        #expect(RedisEndpoint(url: "redis-cluster://127.0.0.1:7000,,127.0.0.1:7001") == nil)
        #expect(RedisEndpoint(url: "redis-cluster://127.0.0.1:x") == nil)
        #expect(RedisEndpoint(url: "redis://h:1/2") == RedisEndpoint(address: .tcp(host: "h", port: 1), database: 2))
    }
}
