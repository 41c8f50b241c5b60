import EngineStoreClient
import EngineStoreLoad
import EngineStoreServer
import EngineStoreWire
import Foundation
import Hiredis
import Logging
import TestHarness
import Testing

/// The service on a real 3-master Redis Cluster (TestRedisCluster): routing, load under --verify,
/// check, Hydrate and its lock, and a master killed and restarted under load.
@Suite struct RedisClusterTests {
    static let mix = "save-position=3,open-position=1,close-position=2,snapshot=1,trade-event=1,ticks=1"

    /// A server on `cluster` with its own database and namespace.
    static func server(_ cluster: TestRedisCluster, hydrate: Bool = true) async throws -> RunningServer {
        // Quiet: a killed master makes the cache writer warn once per batch.
        var logger = Logger(label: "cluster-test-server")
        logger.logLevel = .error
        return try await RunningServer.start(logger: logger) {
            $0.redis = RedisEndpoint(url: cluster.url)!
            $0.snapshotMinIntervalMs = 0
            $0.hydrateOnStart = hydrate
            // Market data's short TTL (10 s) outlived the load only on a fast machine: on a starved
            // one the steps between the load and the price check took longer, and the keys expired.
            $0.ttl.short = 600
        }
    }

    /// Writes of every kind, checked afterwards against Postgres (`--verify`).
    static func load(_ s: RunningServer, count: Int, seed: UInt64) throws -> LoadConfiguration {
        var c = LoadConfiguration(socketPath: s.socketPath)
        c.connections = 2
        c.inFlight = 4
        c.mix = try Mix(parsing: mix)
        c.duration = nil
        c.count = count
        c.ticksPerBatch = 20
        c.verifyPostgresURL = s.postgresURL
        c.seed = seed
        return c
    }

    /// Keys under `namespace` on each master, asked of each node directly.
    static func keysPerNode(_ cluster: TestRedisCluster, _ namespace: String) async throws -> [Int] {
        try await offPool {
            try cluster.ports.indices.map { i in
                let node = try RedisConnection(endpoint: RedisEndpoint(url: cluster.nodeURL(i))!)
                return try node.command(["KEYS", namespace + "*"]).array?.count ?? -1
            }
        }
    }

    static func cacheHits(_ client: EngineStoreClient) async throws -> Double {
        try await client.stats().split(separator: "\n").filter { $0.hasPrefix("cache_requests_total") && $0.contains("result=\"hit\"") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    static func outboxEmpty(_ s: RunningServer) throws -> Bool {
        try s.postgres().exec("SELECT count(*) FROM engine_store_outbox").int(0, 0) == 0
    }

    @Test func pipelinesAreSplitPerMasterAndRepliesKeepTheirOrder() async throws {
        let cluster = try await TestRedisCluster.shared()
        let ns = try await TestServices.shared().uniqueNamespace()
        try await offPool {
            let r = try RedisConnection(endpoint: RedisEndpoint(url: cluster.url)!)
            let n = 300
            let replies = try r.pipeline((0..<n).map { ["SET", ns + "k\($0)", "v\($0)"] } + (0..<n).map { ["GET", ns + "k\($0)"] })
            #expect(replies.prefix(n).allSatisfy { $0 == .status("OK") })
            #expect(Array(replies.suffix(n)) == (0..<n).map { .string(Array("v\($0)".utf8)) })
            #expect(try r.command(["PING"]) == .status("PONG"))
            // SCRIPT LOAD goes to every master, so EVALSHA works whichever node a key lives on.
            let sha = try #require(try r.command(["SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])"]).text)
            let viaScript = try r.pipeline((0..<n).map { ["EVALSHA", sha, "1", ns + "k\($0)"] })
            #expect(viaScript == (0..<n).map { .string(Array("v\($0)".utf8)) })
            // A script over two slots is refused without being sent.
            guard case .error(let e) = try r.command(["EVAL", "return 1", "2", ns + "a", ns + "b"]), e.hasPrefix("CROSSSLOT") else {
                Issue.record("cross-slot script accepted"); return
            }
        }
        let perNode = try await Self.keysPerNode(cluster, ns)
        #expect(perNode.allSatisfy { $0 > 0 }, "keys per master: \(perNode)")
        #expect(perNode.reduce(0, +) == 300)
    }

    @Test func writesUnderLoadVerifyCheckAndHydrate() async throws {
        let cluster = try await TestRedisCluster.shared()
        let s = try await Self.server(cluster)
        let report = try await LoadRunner.run(Self.load(s, count: 400, seed: 21))
        #expect(report.totalErrors == 0)
        #expect(try #require(report.verification).ok)
        #expect(try await eventually(timeout: .seconds(60)) { try Self.outboxEmpty(s) })

        let client = s.client()
        let check = try await client.checkConsistency(CheckConsistencyRequest())
        #expect(check.differences.isEmpty, "\(check.differences.prefix(3))")
        #expect(check.checked > 0)
        let perNode = try await Self.keysPerNode(cluster, s.namespace)
        #expect(perNode.allSatisfy { $0 > 0 }, "keys per master: \(perNode)")

        // Hydrate: blocked while another instance holds the lock, then rebuilds what was deleted.
        let r = try RedisConnection(endpoint: RedisEndpoint(url: cluster.url)!)
        let ns = s.namespace
        _ = try r.command(["SET", ns + "lock:hydrate", "someone-else", "PX", "10000"])
        #expect(try await !client.hydrate().ran)
        _ = try r.command(["DEL", ns + "lock:hydrate"])
        // Every positions hash and recent-trades list, wherever it lives, deleted one by one.
        let documents = try await offPool { () -> [String] in
            let keys = try cluster.ports.indices.flatMap { i in
                let node = try RedisConnection(endpoint: RedisEndpoint(url: cluster.nodeURL(i))!)
                return try (node.command(["KEYS", ns + "positions:*"]).array ?? []) + (node.command(["KEYS", ns + "trades:recent:*"]).array ?? [])
            }
            return keys.compactMap(\.text)
        }
        #expect(documents.count > 2)
        _ = try r.pipeline(documents.map { ["DEL", $0] })
        #expect(try r.pipeline(documents.map { ["EXISTS", $0] }).allSatisfy { $0 == .integer(0) })
        let result = try await client.hydrate()
        #expect(result.ran && result.models > 0)
        #expect(try r.pipeline(documents.map { ["EXISTS", $0] }).allSatisfy { $0 == .integer(1) })
        #expect(try r.command(["EXISTS", ns + "lock:hydrate"]).integer == 0)

        // Reads: every positions hash answers from the cache, whichever master holds it; a deleted one is
        // read from Postgres and refilled.
        let models = documents.filter { $0.hasPrefix(ns + "positions:") }.map { String($0.dropFirst((ns + "positions:").count)) }
        #expect(!models.isEmpty)
        let hitsBefore = try await Self.cacheHits(client)
        for model in models { #expect(try await !client.openPositions(model: model).positions.isEmpty) }
        #expect(try await Self.cacheHits(client) >= hitsBefore + Double(models.count))
        _ = try r.command(["DEL", ns + "positions:" + models[0]])
        #expect(try await !client.openPositions(model: models[0]).positions.isEmpty)
        #expect(try await eventually { try r.command(["EXISTS", ns + "positions:" + models[0]]).integer == 1 })
        // Market data went through the rate limiter to the cluster too.
        #expect(try await Self.keysPerNode(cluster, ns + "price:latest:").reduce(0, +) > 0)
        #expect(try await client.checkConsistency(CheckConsistencyRequest()).differences.isEmpty)
        await client.close()
        await s.stop()
    }
}

/// Tests that change a cluster's nodes or slots: a cluster of their own, one test at a time.
@Suite(.serialized) struct RedisClusterFaultTests {
    static let cluster = Task { try await TestRedisCluster.privateInstance() }

    /// Node ids, and which node serves `key`'s slot.
    static func layout(_ cluster: TestRedisCluster, _ key: String) throws -> (ids: [String], owner: Int, slot: Int) {
        let nodes = try cluster.ports.indices.map { try RedisConnection(endpoint: RedisEndpoint(url: cluster.nodeURL($0))!) }
        let ids = try nodes.map { try #require(try $0.command(["CLUSTER", "MYID"]).text) }
        let slot = RedisClusterSlot.slot(of: key)
        // Every node but the owner answers MOVED.
        let owner = try #require(try nodes.firstIndex { try !$0.command(["GET", key]).errorIsMoved })
        return (ids, owner, slot)
    }

    @Test func askAndMovedAreFollowed() async throws {
        let cluster = try await Self.cluster.value
        try await offPool {
            let key = "{rc-move}a"
            let client = try RedisConnection(endpoint: RedisEndpoint(url: cluster.url)!)
            #expect(try client.command(["GET", key]) == .null)  // the slot map is loaded and in use
            let (ids, a, slot) = try Self.layout(cluster, key)
            let b = (a + 1) % ids.count
            let node = try cluster.ports.indices.map { try RedisConnection(endpoint: RedisEndpoint(url: cluster.nodeURL($0))!) }
            // Slot migrating from a to b: a key a does not hold is answered with ASK.
            #expect(try node[b].command(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", ids[a]]) == .status("OK"))
            #expect(try node[a].command(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", ids[b]]) == .status("OK"))
            #expect(try client.command(["SET", key, "v"]) == .status("OK"))
            #expect(try node[b].command(["CLUSTER", "COUNTKEYSINSLOT", String(slot)]) == .integer(1))
            #expect(try client.command(["GET", key]) == .string(Array("v".utf8)))
            // The slot now belongs to b: the client's map is stale, a answers MOVED.
            for n in node { #expect(try n.command(["CLUSTER", "SETSLOT", String(slot), "NODE", ids[b]]) == .status("OK")) }
            #expect(try client.command(["GET", key]) == .string(Array("v".utf8)))
            #expect(try client.pipeline([["SET", key, "w"], ["GET", key]]) == [.status("OK"), .string(Array("w".utf8))])
            #expect(!client.isBroken)
        }
    }

    /// Load runs while a master is dead (its writes fail and stay owed), then more load while it is
    /// started again on its port and nodes.conf. The outbox drains and check finds the caches equal.
    @Test func aMasterKilledAndRestartedUnderLoadConverges() async throws {
        let cluster = try await Self.cluster.value
        let s = try await RedisClusterTests.server(cluster)
        var c = try RedisClusterTests.load(s, count: 400, seed: 33)
        let client = s.client()
        func failures() async throws -> Double {
            let text = try await client.stats()
            return text.split(separator: "\n").filter { $0.hasPrefix("cache_write_failures_total") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
        // Models whose positions hash lives on the master about to die: each has BTC and ETH cached.
        let ns = s.namespace
        let r = try RedisConnection(endpoint: RedisEndpoint(url: cluster.url)!)
        let doomed = try await offPool { () -> [String] in
            let node = try RedisConnection(endpoint: RedisEndpoint(url: cluster.nodeURL(1))!)
            return Array(try (0..<500).map { "rk\($0)" }.filter { try !node.command(["GET", ns + "positions:" + $0]).errorIsMoved }.prefix(3))
        }
        #expect(doomed.count == 3)
        for model in doomed {
            _ = try await client.savePosition(openRequest(model: model, symbol: "BTC"))
            _ = try await client.savePosition(openRequest(model: model, symbol: "ETH"))
        }
        #expect(try await eventually { try doomed.allSatisfy { try r.command(["HLEN", ns + "positions:" + $0]) == .integer(2) } })
        let before = try await failures()
        try await offPool { try cluster.killNode(1) }
        // Closed while their master is dead: only the outbox remembers the cache owes an HDEL.
        for model in doomed {
            _ = try await client.closePosition(ClosePositionRequest(modelID: model, symbol: "BTC", exitPrice: 99, exitTimeMs: 1_764_201_700_000))
        }
        let whileDown = try await LoadRunner.run(c)
        // The outage reached the cache writer, and Health sees it: PING goes to every master.
        #expect(try await failures() > before)
        #expect(try await eventuallyAsync { try await client.health().status == .degraded })

        c.count = nil
        c.duration = 3
        c.seed = 34
        async let duringRestart = LoadRunner.run(c)
        try await offPool { try cluster.startNode(1); try cluster.waitUntilHealthy() }
        let after = try await duringRestart
        for report in [whileDown, after] {
            #expect(report.totalErrors == 0)
            #expect(try #require(report.verification).ok)
        }
        // The outbox kept what the dead master did not take; the relay delivered it after the restart.
        #expect(try await eventually(timeout: .seconds(60)) { try RedisClusterTests.outboxEmpty(s) })
        // A new connection: the old one's link to the killed node is dead (its next command there fails once).
        let fresh = try RedisConnection(endpoint: RedisEndpoint(url: cluster.url)!)
        for model in doomed {
            #expect(try fresh.command(["HEXISTS", ns + "positions:" + model, "BTC"]) == .integer(0))
            #expect(try fresh.command(["HEXISTS", ns + "positions:" + model, "ETH"]) == .integer(1))
        }
        let check = try await client.checkConsistency(CheckConsistencyRequest())
        #expect(check.differences.isEmpty, "\(check.differences.prefix(3))")
        #expect(check.checked > 0)
        #expect(try await eventuallyAsync { try await client.health().status == .ok })
        await client.close()
        await s.stop()
    }
}

extension RedisReply {
    var errorIsMoved: Bool {
        if case .error(let e) = self { return e.hasPrefix("MOVED") }
        return false
    }
}
