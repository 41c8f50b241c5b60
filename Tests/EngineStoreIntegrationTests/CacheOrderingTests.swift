import EngineStoreClient
import EngineStoreServer
import EngineStoreWire
import Foundation
import Hiredis
import LibPQ
import TestHarness
import Synchronization
import Testing

/// Holds the first server thread that reaches a hook with `key` until the test releases it.
/// Safety of `@unchecked Sendable`: every stored property is read and written only while holding
/// `condition`'s lock; NSCondition itself is thread-safe.
final class Gate: @unchecked Sendable {
    private let condition = NSCondition()
    private var armedKey: String?
    private var holding = false
    private var released = false

    func arm(_ key: String) {
        condition.lock()
        armedKey = key
        released = false
        condition.unlock()
    }

    /// The hook: blocks the calling server thread if it writes the armed key.
    func pass(_ keys: [String]) {
        condition.lock()
        defer { condition.unlock() }
        guard let k = armedKey, keys.contains(k) else { return }
        armedKey = nil
        holding = true
        while !released { condition.wait() }
        holding = false
    }

    var isHolding: Bool {
        condition.lock()
        defer { condition.unlock() }
        return holding
    }

    func release() {
        condition.lock()
        released = true
        armedKey = nil
        condition.broadcast()
        condition.unlock()
    }
}

/// Cache writes reach Redis in a different order than their commits; Redis must end with the newest.
/// Each test forces one interleaving with the server's test hooks.
@Suite struct CacheOrderingTests {
    func quantity(_ redis: RedisConnection, _ key: String, _ symbol: String) throws -> Double? {
        guard let text = try redis.command(["HGET", key, symbol]).text,
              let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        return (o["quantity"] as? NSNumber)?.doubleValue
    }

    func outboxDepth(_ s: RunningServer) throws -> Int64 {
        try s.postgres().exec("SELECT count(*) FROM engine_store_outbox").int(0, 0) ?? -1
    }

    func update(_ model: String, _ symbol: String, quantity: Double) -> SavePositionRequest {
        SavePositionRequest(idempotencyKey: UUID().uuidString, modelID: model, symbol: symbol, quantity: quantity)
    }

    /// Worker A commits quantity 2 and stalls before handing its cache write on; worker B commits
    /// quantity 3 and applies it; then A's (older) write reaches Redis. Redis must keep 3. One
    /// instance writes a model from one worker only, so B is a second instance on the same database
    /// and Redis namespace (as in a scale-out).
    @Test func anOlderDirectWriteNeverReplacesANewerOne() async throws {
        let gate = Gate()
        let s = try await RunningServer.start { $0.testHooks.workerDidCommit = { gate.pass($0) } }
        defer { gate.release() }
        let other = try await RunningServer.start(database: s.postgresURL, namespace: s.namespace)
        let client = s.client()
        let otherClient = other.client()
        let redis = try s.redis()
        let key = s.namespace + "positions:ord"
        _ = try await client.savePosition(openRequest(model: "ord", symbol: "BTC", quantity: 1))
        #expect(try await eventually { try quantity(redis, key, "BTC") == 1 })

        gate.arm(key)
        async let older = client.savePosition(update("ord", "BTC", quantity: 2))
        #expect(await eventually { gate.isHolding })
        _ = try await otherClient.savePosition(update("ord", "BTC", quantity: 3))
        #expect(try await eventually { try quantity(redis, key, "BTC") == 3 })
        gate.release()
        _ = try await older
        #expect(try await eventually { try outboxDepth(s) == 0 })
        #expect(try quantity(redis, key, "BTC") == 3)
        #expect(try await client.openPositions(model: "ord").positions.first?.quantity == 3)
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["ord"])).differences.isEmpty)
        await client.close()
        await otherClient.close()
        await other.stop()
        await s.stop()
    }

    /// Redis drops a hash whose last field is deleted. The hash is then known empty, not missing: the
    /// next open is written directly, and the relay rebuilds nothing. A hash deleted from outside is
    /// still missing: the next write leaves it to the relay, which builds it whole.
    @Test func anOpenAfterTheLastCloseIsWrittenDirectly() async throws {
        let rebuilds = Atomic<Int>(0)
        let s = try await RunningServer.start {
            $0.testHooks.relayWillApply = { keys in
                if keys.contains(where: { $0.hasSuffix("positions:empty") }) { rebuilds.add(1, ordering: .relaxed) }
            }
        }
        let client = s.client()
        let redis = try s.redis()
        let key = s.namespace + "positions:empty"
        _ = try await client.savePosition(openRequest(model: "empty", symbol: "BTC"))
        #expect(try await eventually { try redis.command(["HEXISTS", key, "BTC"]).integer == 1 })
        #expect(try await s.cacheSettled())
        _ = try await client.closePosition(ClosePositionRequest(modelID: "empty", symbol: "BTC", exitPrice: 101, exitTimeMs: 1_764_201_700_000))
        #expect(try await eventually { try redis.command(["EXISTS", key]).integer == 0 })
        #expect(try await s.cacheSettled())
        // The first open found no hash, and the close no recent-trades list: the relay built those.
        let built = rebuilds.load(ordering: .relaxed)
        _ = try await client.savePosition(openRequest(model: "empty", symbol: "ETH"))
        #expect(try await eventually { try redis.command(["HEXISTS", key, "ETH"]).integer == 1 })
        #expect(try await s.cacheSettled())
        #expect(rebuilds.load(ordering: .relaxed) == built)
        #expect(try redis.command(["HLEN", key]).integer == 1)

        // Deleted from outside while it held ETH: missing again, so SOL's write goes to the relay,
        // which builds the whole hash (ETH and SOL), never SOL alone.
        _ = try redis.command(["DEL", key])
        _ = try await client.savePosition(openRequest(model: "empty", symbol: "SOL"))
        #expect(try await eventually { try redis.command(["HLEN", key]).integer == 2 })
        #expect(rebuilds.load(ordering: .relaxed) > built)
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["empty"])).differences.isEmpty)
        await client.close()
        await s.stop()
    }

    /// A full close applied first (by a second instance), then an older update of the same position
    /// arrives: the closed position must not come back.
    @Test func aClosedPositionStaysClosed() async throws {
        let gate = Gate()
        let s = try await RunningServer.start { $0.testHooks.workerDidCommit = { gate.pass($0) } }
        defer { gate.release() }
        let other = try await RunningServer.start(database: s.postgresURL, namespace: s.namespace)
        let client = s.client()
        let otherClient = other.client()
        let redis = try s.redis()
        let key = s.namespace + "positions:tomb"
        _ = try await client.savePosition(openRequest(model: "tomb", symbol: "BTC", quantity: 1))
        _ = try await client.savePosition(openRequest(model: "tomb", symbol: "ETH", quantity: 1))
        #expect(try await eventually { try quantity(redis, key, "BTC") == 1 })

        gate.arm(key)
        async let older = client.savePosition(update("tomb", "BTC", quantity: 2))
        #expect(await eventually { gate.isHolding })
        _ = try await otherClient.closePosition(ClosePositionRequest(modelID: "tomb", symbol: "BTC", exitPrice: 101, exitTimeMs: 1_764_201_700_000))
        #expect(try await eventually { try redis.command(["HEXISTS", key, "BTC"]).integer == 0 })
        gate.release()
        _ = try await older
        #expect(try await eventually { try outboxDepth(s) == 0 })
        #expect(try redis.command(["HEXISTS", key, "BTC"]).integer == 0)
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["tomb"])).differences.isEmpty)
        await client.close()
        await otherClient.close()
        await other.stop()
        await s.stop()
    }

    /// The relay reads Postgres (quantity 2), stalls; a newer write (3) lands directly; then the
    /// relay's rebuild arrives. Redis must keep 3.
    @Test func aStaleRelayRebuildNeverReplacesANewerWrite() async throws {
        let gate = Gate()
        let s = try await RunningServer.start {
            $0.testHooks.relayWillApply = { gate.pass($0) }
            // No warm-up: one that a busy host delays until after the DEL below refills the hash, the
            // write then applies directly and the relay never runs (a CI failure).
            $0.hydrateOnStart = false
        }
        defer { gate.release() }
        let client = s.client()
        let redis = try s.redis()
        let key = s.namespace + "positions:rel"
        _ = try await client.savePosition(openRequest(model: "rel", symbol: "BTC", quantity: 1))
        _ = try await client.savePosition(openRequest(model: "rel", symbol: "ETH", quantity: 1))
        #expect(try await eventually { try quantity(redis, key, "ETH") == 1 })

        // A missing hash sends the next write to the relay, which stops before writing.
        gate.arm(key)
        _ = try redis.command(["DEL", key])
        _ = try await client.savePosition(update("rel", "BTC", quantity: 2))
        #expect(await eventually { gate.isHolding })
        // A read refills the hash; the newer write then applies directly.
        _ = try await client.openPositions(model: "rel")
        #expect(try await eventually { try quantity(redis, key, "BTC") == 2 })
        _ = try await client.savePosition(update("rel", "BTC", quantity: 3))
        #expect(try await eventually { try quantity(redis, key, "BTC") == 3 })
        gate.release()
        #expect(try await eventually { try outboxDepth(s) == 0 })
        #expect(try quantity(redis, key, "BTC") == 3)
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["rel"])).differences.isEmpty)
        await client.close()
        await s.stop()
    }

    /// Closes whose exit times do not follow their commit order: the list is still the newest by
    /// exit time (ties by id), as Postgres returns it, and it is built by a merge, never replaced.
    @Test func recentTradesFollowExitTimeWhateverTheCommitOrder() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let redis = try s.redis()
        let listKey = s.namespace + "trades:recent:late"
        let t = Int64(1_764_201_700_000)
        for symbol in ["A", "B", "C", "D", "E"] {
            _ = try await client.savePosition(openRequest(model: "late", symbol: symbol, quantity: 1))
        }
        _ = try await client.closePosition(ClosePositionRequest(modelID: "late", symbol: "A", exitPrice: 101, exitTimeMs: t + 10))
        _ = try await client.recentTrades(model: "late", limit: 10)  // a miss: the read builds the list
        #expect(try await eventually { try redis.command(["LLEN", listKey]).integer == 1 })
        for (symbol, exit) in [("B", t + 30), ("C", t + 5), ("D", t + 20), ("E", t + 20)] {
            _ = try await client.closePosition(ClosePositionRequest(modelID: "late", symbol: symbol, exitPrice: 101, exitTimeMs: exit))
        }
        #expect(try await eventually { try redis.command(["LLEN", listKey]).integer == 5 })
        let exits = try (redis.command(["LRANGE", listKey, "0", "-1"]).array ?? []).compactMap { item -> Int64? in
            guard let text = item.text, let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
            return (o["closed_at_ms"] as? NSNumber)?.int64Value
        }
        #expect(exits == [t + 30, t + 20, t + 20, t + 10, t + 5])
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["late"])).differences.isEmpty)
        // The read path answers the same order from the cache and from Postgres.
        let cached = try await client.recentTrades(model: "late", limit: 10).trades.map(\.closedAtMs)
        _ = try redis.command(["DEL", listKey])
        let fromPostgres = try await client.recentTrades(model: "late", limit: 10).trades.map(\.closedAtMs)
        #expect(cached == fromPostgres)
        await client.close()
        await s.stop()
    }

    /// Redis refuses writes (OOM): every write still succeeds, the outbox keeps what Redis did not
    /// confirm, and once Redis takes writes again every event reaches the stream and the caches agree.
    @Test func refusedRedisWritesStayOwedUntilRedisTakesThem() async throws {
        let services = try await TestServices.privateInstance()
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services)
        let client = s.client()
        let redis = try s.redis()
        _ = try await client.savePosition(openRequest(model: "oom", symbol: "KEEP", quantity: 1))
        _ = try redis.command(["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        _ = try redis.command(["CONFIG", "SET", "maxmemory", "1"])
        defer { _ = try? redis.command(["CONFIG", "SET", "maxmemory", "0"]) }
        var expected: Set<String> = []
        for i in 0..<20 {
            let symbol = "S\(i)"
            _ = try await client.savePosition(openRequest(model: "oom", symbol: symbol, quantity: 2))
            let closed = try await client.closePosition(ClosePositionRequest(modelID: "oom", symbol: symbol, exitPrice: 99,
                                                                             exitTimeMs: 1_764_201_700_000 + Int64(i)))
            expected.insert(closed.tradeRowID)
            let event = PublishTradeEventRequest(idempotencyKey: UUID().uuidString, tradeID: "oom-\(i)", modelID: "oom", symbol: symbol,
                                                 kind: "fill", timestampMs: 1_764_201_700_000 + Int64(i))
            _ = try await client.publishTradeEvent(event)
            expected.insert("oom-\(i)")
        }
        _ = try await client.savePosition(update("oom", "KEEP", quantity: 5))
        let stream = s.namespace + "trades:stream"
        // Nothing reached Redis, and the rows that owe it are still there (the relay keeps failing).
        #expect(try await eventually { try outboxDepth(s) > 0 })
        #expect(try redis.command(["XLEN", stream]).integer ?? 0 == 0)
        _ = try redis.command(["CONFIG", "SET", "maxmemory", "0"])
        #expect(try await eventually(timeout: .seconds(15)) { try outboxDepth(s) == 0 })
        let ids = Set(try streamEventIDs(redis, stream))
        #expect(expected.subtracting(ids).isEmpty)
        #expect(try await eventually { try quantity(redis, s.namespace + "positions:oom", "KEEP") == 5 })
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["oom"])).differences.isEmpty)
        await client.close()
        await s.stop()
    }

    /// Snapshots of several traders in different orders, with marks, beside position writes on
    /// the same rows, from many connections at once: no lock cycle, so no deadlock.
    @Test func concurrentSnapshotsNeverDeadlock() async throws {
        let s = try await RunningServer.start { $0.snapshotMinIntervalMs = 0 }
        let setup = s.client()
        let models = (0..<6).map { "dl\($0)" }
        let symbols = ["BTC", "ETH", "SOL"]
        for m in models { for sym in symbols { _ = try await setup.savePosition(openRequest(model: m, symbol: sym, quantity: 1)) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in 0..<8 {
                group.addTask {
                    let client = s.client()
                    for i in 0..<40 {
                        let order = (c + i) % 2 == 0 ? models : models.reversed()
                        let snaps = order.map { m in
                            AccountSnapshot(modelID: m, timestampMs: 1_764_201_600_000 + Int64(c * 1000 + i), dollarEquity: 1000,
                                            marks: (i % 2 == 0 ? symbols : symbols.reversed()).map {
                                                PositionMark(symbol: $0, currentPrice: 100 + Double(i), unrealizedPnl: 1)
                                            })
                        }
                        _ = try await client.saveSnapshots(SaveSnapshotRequest(idempotencyKey: UUID().uuidString, snapshots: snaps))
                        _ = try await client.savePosition(update(order[i % order.count], symbols[i % symbols.count], quantity: Double(i + 1)))
                    }
                    await client.close()
                }
            }
            try await group.waitForAll()
        }
        let metrics = try await setup.stats()
        #expect(!metrics.contains("postgres_deadlocks_total 1"))
        #expect(!metrics.split(separator: "\n").contains { $0.hasPrefix("postgres_deadlocks_total") && !$0.hasSuffix(" 0") })
        #expect(try await setup.checkConsistency(CheckConsistencyRequest(models: models)).differences.isEmpty)
        await setup.close()
        await s.stop()
    }

    /// Many clients open, update, partly and fully close positions and publish trade events on a few
    /// symbols, while Redis is stopped (SIGSTOP, longer than the 2 s Redis timeout) and resumed at
    /// random. Afterwards the outbox drains and the consistency check finds nothing. One round runs
    /// in CI; ENGINE_STORE_RANDOM_ROUNDS=20 (say) is the long run.
    @Test func randomizedLoadWithRedisPausesEndsConsistent() async throws {
        let rounds = Int(ProcessInfo.processInfo.environment["ENGINE_STORE_RANDOM_ROUNDS"] ?? "") ?? 1
        let services = try await TestServices.privateInstance()
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services)
        let models = ["rnd0", "rnd1", "rnd2"]
        let symbols = ["BTC", "ETH"]
        let check = s.client()
        for round in 0..<rounds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in 0..<6 {
                    group.addTask {
                        let client = s.client()
                        var rng = SystemRandomNumberGenerator()
                        for i in 0..<50 {
                            let model = models.randomElement(using: &rng)!, symbol = symbols.randomElement(using: &rng)!
                            let t = Int64(1_764_201_600_000 + round * 100_000 + c * 1000 + i)
                            switch Int.random(in: 0..<10, using: &rng) {
                            case 0..<4:
                                _ = try? await client.savePosition(openRequest(model: model, symbol: symbol, quantity: Double(Int.random(in: 1...8))))
                            case 4..<6:
                                _ = try? await client.closePosition(ClosePositionRequest(modelID: model, symbol: symbol, exitPrice: 101,
                                                                                         exitSize: 0.5, exitTimeMs: t))
                            case 6..<8:
                                _ = try? await client.closePosition(ClosePositionRequest(modelID: model, symbol: symbol, exitPrice: 99,
                                                                                         exitTimeMs: t - Int64.random(in: 0...5000, using: &rng)))
                            default:
                                _ = try? await client.publishTradeEvent(PublishTradeEventRequest(
                                    idempotencyKey: UUID().uuidString, tradeID: UUID().uuidString, modelID: model, symbol: symbol,
                                    kind: "fill", timestampMs: t))
                            }
                        }
                        await client.close()
                    }
                }
                // The fault: Redis stopped and resumed at random while the writes run (pacing, not synchronisation).
                group.addTask {
                    for _ in 0..<2 {
                        try await Task.sleep(for: .milliseconds(Int.random(in: 50...300)))
                        try services.pauseRedis()
                        try? await Task.sleep(for: .milliseconds(Int.random(in: 300...2600)))
                        try services.resumeRedis()
                    }
                }
                try await group.waitForAll()
            }
            try services.resumeRedis()
            let drained = try await eventually(timeout: .seconds(20)) { try outboxDepth(s) == 0 }
            #expect(drained, "round \(round): outbox did not drain")
            let report = try await check.checkConsistency(CheckConsistencyRequest(models: models))
            #expect(report.differences.isEmpty, "round \(round): \(report.differences.map { "\($0.kind) \($0.key)" })")
        }
        await check.close()
        await s.stop()
    }

    /// Equal leaderboard scores come back in one order, model id ascending, from the cache and from
    /// Postgres alike (Redis alone would give them reversed).
    @Test func leaderboardTiesReadTheSameFromCacheAndPostgres() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let redis = try s.redis()
        let entries = ["tie-b", "tie-c", "tie-a", "top"].map {
            ModelAnalytics(modelID: $0, payloadJSON: $0 == "top" ? #"{"total_pnl_pct": 9}"# : #"{"total_pnl_pct": 1.5}"#,
                           serverTimeMs: 1_764_201_600_000)
        }
        _ = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: entries))
        #expect(try await eventually { try redis.command(["ZCARD", s.namespace + "leaderboard"]).integer == 4 })
        let cached = try await client.leaderboard(limit: 3)
        #expect(cached.source == .cache)
        #expect(try await s.cacheSettled())
        _ = try redis.command(["DEL", s.namespace + "leaderboard"])
        let fromPostgres = try await client.leaderboard(limit: 3)
        #expect(fromPostgres.source == .postgres)
        #expect(cached.entries.map(\.modelID) == ["top", "tie-a", "tie-b"])
        #expect(fromPostgres.entries.map(\.modelID) == cached.entries.map(\.modelID))
        await client.close()
        await s.stop()
    }
}
