import EngineStoreClient
import EngineStoreServer
import Foundation
import Hiredis
import LibPQ
import TestHarness
import Testing

/// Redis never stays wrong: the outbox relay, warm-up and consistency checks, with real outages
/// on a Postgres and Redis of the test's own.
@Suite struct CacheDurabilityTests {
    @Test func redisOutageUnderWritesLosesNothing() async throws {
        let services = try await TestServices.privateInstance()
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services)
        let client = s.client()
        // Writes while Redis is down: every one acknowledged.
        try await offPool { try services.stopRedis() }
        var events: [String] = []
        for i in 0..<10 {
            _ = try await client.savePosition(openRequest(model: "outage", symbol: "S\(i)"))
            let id = "ev-outage-\(i)"
            _ = try await client.publishTradeEvent(PublishTradeEventRequest(tradeID: id, modelID: "outage", symbol: "BTC", kind: "fill",
                                                                            timestampMs: t0 + Int64(i)))
            events.append(id)
        }
        for i in 0..<3 {
            let closed = try await client.closePosition(ClosePositionRequest(modelID: "outage", symbol: "S\(i)", exitPrice: 101,
                                                                             exitTimeMs: t0 + 100 + Int64(i)))
            events.append(closed.tradeRowID)
        }
        _ = try await client.saveTraderState(SaveTraderStateRequest(state: TraderState(traderID: "outage", exchangeProvider: "x", marketProvider: "x")))
        _ = try await client.recordDecisionCycle(RecordDecisionCycleRequest(modelID: "outage", decisionsJSON: #"[{"symbol":"BTC","action":"hold"}]"#, success: true))
        _ = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [ModelAnalytics(modelID: "outage", payloadJSON: #"{"total_pnl_pct": 3}"#, serverTimeMs: t0)]))

        // Redis back: every key and every stream event arrives within 5 s.
        try await offPool { try services.startRedis() }
        let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
        let ns = s.namespace
        let start = ContinuousClock.now
        let converged = try await eventually(timeout: .seconds(5)) {
            try redis.command(["HLEN", ns + "positions:outage"]).integer == 7
                && redis.command(["LLEN", ns + "trades:recent:outage"]).integer == 3
                && Set(try streamEventIDs(redis, ns + "trades:stream")) == Set(events)
                && redis.command(["EXISTS", ns + "trader:outage:state"]).integer == 1
                && redis.command(["EXISTS", ns + "decision:last:outage"]).integer == 1
                && redis.command(["ZSCORE", ns + "leaderboard", "outage"]).text == "3"
                && redis.command(["EXISTS", ns + "ingest:trade:ev-outage-9"]).integer == 1
        }
        #expect(converged)
        print("convergence after Redis restart: \(ContinuousClock.now - start)")
        #expect(try streamEventIDs(redis, ns + "trades:stream").count == events.count)
        #expect(try await eventually { try s.postgres().exec("SELECT count(*) FROM engine_store_outbox").int(0, 0) == 0 })
        // Contents, not only counts: every cached document equals what Postgres holds.
        let report = try await client.checkConsistency(CheckConsistencyRequest(models: ["outage"]))
        #expect(report.differences.isEmpty, "\(report.differences.map { "\($0.kind) \($0.key)" })")
        #expect(report.checked > 0)
        await client.close()
        await s.stop()
    }

    @Test func eventsOwedAtShutdownAreDeliveredByTheNextInstance() async throws {
        let services = try await TestServices.privateInstance()
        let db = try await offPool { try services.createDatabase() }
        let ns = try await TestServices.shared().uniqueNamespace()
        let first = try await RunningServer.start(database: db, services: services, namespace: ns)
        let client = first.client()
        try await offPool { try services.stopRedis() }
        var ids: [String] = []
        for i in 0..<5 {
            let id = "ev-crash-\(i)"
            _ = try await client.publishTradeEvent(PublishTradeEventRequest(tradeID: id, modelID: "crash", symbol: "ETH", kind: "fill",
                                                                            timestampMs: t0 + Int64(i)))
            ids.append(id)
        }
        await client.close()
        await first.stop()  // the acknowledged events were never published
        #expect(try first.postgres().exec("SELECT count(*) FROM engine_store_outbox").int(0, 0) == 5)

        try await offPool { try services.startRedis() }
        let second = try await RunningServer.start(database: db, services: services, namespace: ns) { $0.hydrateOnStart = false }
        let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
        #expect(try await eventually(timeout: .seconds(5)) { Set(try streamEventIDs(redis, ns + "trades:stream")) == Set(ids) })
        #expect(try streamEventIDs(redis, ns + "trades:stream").count == 5)
        await second.stop()
    }

    @Test func twoInstancesDrainOneOutboxWithoutLossOrDuplicates() async throws {
        let services = try await TestServices.privateInstance()
        let db = try await offPool { try services.createDatabase() }
        let ns = try await TestServices.shared().uniqueNamespace()
        let a = try await RunningServer.start(database: db, services: services, namespace: ns)
        let b = try await RunningServer.start(database: db, services: services, namespace: ns)
        let ca = a.client(), cb = b.client()
        try await offPool { try services.stopRedis() }
        var ids: [String] = []
        for i in 0..<40 {
            let id = "ev-two-\(i)"
            _ = try await (i.isMultiple(of: 2) ? ca : cb).publishTradeEvent(
                PublishTradeEventRequest(tradeID: id, modelID: "two", symbol: "SOL", kind: "fill", timestampMs: t0 + Int64(i)))
            ids.append(id)
        }
        try await offPool { try services.startRedis() }
        let redis = try RedisConnection(endpoint: RedisEndpoint(url: services.redisURL)!)
        #expect(try await eventually(timeout: .seconds(5)) { Set(try streamEventIDs(redis, ns + "trades:stream")) == Set(ids) })
        let delivered = try streamEventIDs(redis, ns + "trades:stream")
        #expect(delivered.count == ids.count)
        await ca.close(); await cb.close()
        await a.stop(); await b.stop()
    }

    /// A relay batch where Redis takes the stream entries but refuses a key (here a list of the
    /// wrong type; in life, maxmemory or a failover clearing half-way through the batch). The taken
    /// entries' rows must go and the refused key's rows stay: sending the batch again would add
    /// every entry twice. A close's event row and its list row are written together, so every batch
    /// that holds an event also holds the broken key. Fails when a batch is all or nothing.
    @Test func streamEntriesRedisTookAreNotSentAgainWhenAKeyIsRefused() async throws {
        let services = try await TestServices.privateInstance()
        let db = try await offPool { try services.createDatabase() }
        let s = try await RunningServer.start(database: db, services: services) {
            $0.outboxGraceMs = 100
            $0.hydrateOnStart = false
        }
        let client = s.client()
        let redis = try s.redis()
        let ns = s.namespace
        let recent = ns + "trades:recent:half"
        _ = try redis.command(["SET", recent, "not a list"])
        // Redis refuses writes while the trades close, so every stream entry is owed to the relay.
        _ = try redis.command(["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        _ = try redis.command(["CONFIG", "SET", "maxmemory", "1"])
        defer { _ = try? redis.command(["CONFIG", "SET", "maxmemory", "0"]) }
        var expected: [String] = []
        for i in 0..<4 {
            _ = try await client.savePosition(openRequest(model: "half", symbol: "S\(i)"))
            expected.append(try await client.closePosition(ClosePositionRequest(modelID: "half", symbol: "S\(i)", exitPrice: 99,
                                                                                exitTimeMs: t0 + Int64(i))).tradeRowID)
        }
        _ = try redis.command(["CONFIG", "SET", "maxmemory", "0"])
        let pg = try s.postgres()
        func owed(_ condition: String) throws -> Int64 {
            try pg.exec("SELECT count(*) FROM engine_store_outbox WHERE " + condition).int(0, 0) ?? -1
        }
        // The events leave the outbox while the broken key keeps its rows.
        #expect(try await eventually(timeout: .seconds(10)) { try owed("kind = 'close_event'") == 0 })
        #expect(try owed("kind <> 'close_event'") > 0)
        _ = try redis.command(["DEL", recent])
        #expect(try await eventually(timeout: .seconds(10)) { try owed("true") == 0 })
        let ids = try streamEventIDs(redis, ns + "trades:stream")
        #expect(Set(ids) == Set(expected))
        #expect(ids.count == expected.count, "duplicates: \(ids.count - Set(ids).count)")
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["half"])).differences.isEmpty)
        await client.close()
        await s.stop()
    }

    @Test func postgresOutageFailsFastAndRecoversWithoutRestart() async throws {
        let services = try await TestServices.privateInstance()
        let s = try await RunningServer.start(database: try await offPool { try services.createDatabase() }, services: services)
        var config = ClientConfiguration(socketPath: s.socketPath)
        config.defaultTimeout = .seconds(2)
        let client = EngineStoreClient(configuration: config)
        // The set-up write with the default deadline (the 2 s one is for the outage).
        let setup = s.client()
        _ = try await setup.savePosition(openRequest(model: "pgdown", symbol: "BTC"))
        await setup.close()
        try await offPool { try services.stopPostgres() }
        let start = ContinuousClock.now
        let error = await #expect(throws: EngineStoreError.self) { try await client.savePosition(openRequest(model: "pgdown", symbol: "ETH")) }
        // Within the 2 s client deadline, plus slack for a loaded 2-core CI machine; a hang would take far longer.
        #expect(ContinuousClock.now - start < .seconds(4))
        #expect(error?.retryable == true)
        #expect(error?.code == .unavailable || error?.code == .deadlineExceeded)
        // Polled: on a loaded CI machine one call has missed the 2 s client deadline before it was sent.
        #expect(await eventuallyAsync { (try? await client.health().status) == .unhealthy })
        try await offPool { try services.startPostgres() }
        // Same service, no restart: writes succeed again (the client retries inside its deadline).
        var ok = false
        for _ in 0..<20 where !ok {
            ok = (try? await client.savePosition(openRequest(model: "pgdown", symbol: "ETH"))) != nil
        }
        #expect(ok)
        // Every worker finds its way back (a worker that failed during the outage reconnects too).
        #expect(await eventuallyAsync { (try? await client.health().status) == .ok })
        await client.close()
        await s.stop()
    }

    @Test func checkReportsCorruptionAndRepairFixesTheCacheOnly() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.savePosition(openRequest(model: "chk", symbol: "BTC"))
        _ = try await client.savePosition(openRequest(model: "chk", symbol: "ETH"))
        _ = try await client.closePosition(ClosePositionRequest(modelID: "chk", symbol: "ETH", exitPrice: 99, exitTimeMs: t0 + 5))
        _ = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [ModelAnalytics(modelID: "chk", payloadJSON: #"{"total_pnl_pct": 1.5}"#, serverTimeMs: t0)]))
        _ = try await client.saveTraderState(SaveTraderStateRequest(state: TraderState(traderID: "chk", exchangeProvider: "x", marketProvider: "y")))
        let redis = try s.redis()
        let ns = s.namespace
        // The leaderboard is rebuilt by the relay right after the commit (it spans every model).
        #expect(try await eventually {
            try redis.command(["EXISTS", ns + "trader:chk:state"]).integer == 1 && redis.command(["LLEN", ns + "trades:recent:chk"]).integer == 1
                && redis.command(["ZSCORE", ns + "leaderboard", "chk"]).text == "1.5"
        })
        let clean = try await client.checkConsistency(CheckConsistencyRequest(models: ["chk"]))
        #expect(clean.differences.isEmpty)

        // Corrupt the caches.
        _ = try redis.command(["HSET", ns + "positions:chk", "BTC", #"{"symbol":"BTC","quantity":99}"#])
        _ = try redis.command(["HSET", ns + "positions:chk", "DOGE", "{}"])
        _ = try redis.command(["LSET", ns + "trades:recent:chk", "0", #"{"bogus":true}"#])
        // A well-formed trade that Postgres does not have: only a repair by id can remove it (the list is merged).
        _ = try redis.command(["RPUSH", ns + "trades:recent:chk", #"{"id":"ghost","closed_at_ms":1,"symbol":"BTC"}"#])
        _ = try redis.command(["ZADD", ns + "leaderboard", "42", "chk"])
        _ = try redis.command(["SET", ns + "trader:chk:state", #"{"state":{}}"#])
        // The exchange reports BTC short and SOL, while Postgres holds BTC long.
        let exchange = [ExchangePosition(modelID: "chk", symbol: "BTC", side: .short, quantity: 1.5),
                        ExchangePosition(modelID: "chk", symbol: "SOL", side: .long, quantity: 1)]
        let report = try await client.checkConsistency(CheckConsistencyRequest(models: ["chk"], exchangeModels: ["chk"], exchangePositions: exchange))
        let kinds = Dictionary(grouping: report.differences, by: \.kind).mapValues(\.count)
        #expect(kinds["positions_cache"] == 2)
        #expect(kinds["recent_trades_cache"] == 1)
        #expect(kinds["leaderboard_cache"] == 1)
        #expect(kinds["trader_state_cache"] == 1)
        #expect(kinds["exchange_positions"] == 2)
        #expect(report.differences.first { $0.kind == "positions_cache" && $0.key.hasSuffix("BTC") }?.otherValue.contains("99") == true)

        let repaired = try await client.checkConsistency(CheckConsistencyRequest(models: ["chk"], repair: true, exchangeModels: ["chk"], exchangePositions: exchange))
        #expect(repaired.differences.filter { $0.kind != "exchange_positions" }.allSatisfy { $0.repaired })
        #expect(repaired.differences.filter { $0.kind == "exchange_positions" }.allSatisfy { !$0.repaired })
        let after = try await client.checkConsistency(CheckConsistencyRequest(models: ["chk"], exchangeModels: ["chk"], exchangePositions: exchange))
        #expect(after.differences.map(\.kind) == ["exchange_positions", "exchange_positions"])
        #expect(try !(redis.command(["LRANGE", ns + "trades:recent:chk", "0", "-1"]).array ?? []).contains { $0.text?.contains("ghost") == true })
        // The database was never changed from the cache or the exchange.
        #expect(try s.postgres().exec("SELECT side, quantity FROM positions WHERE model_id = 'chk' AND status = 'open'").string(0, 0) == "long")
        await client.close()
        await s.stop()
    }

    @Test func hydrateRebuildsEverythingUnderALock() async throws {
        let s = try await RunningServer.start { $0.hydrateOnStart = false }
        let client = s.client()
        _ = try await client.savePosition(openRequest(model: "hyd", symbol: "BTC"))
        _ = try await client.savePosition(openRequest(model: "hyd", symbol: "ETH"))
        _ = try await client.closePosition(ClosePositionRequest(modelID: "hyd", symbol: "ETH", exitPrice: 99, exitTimeMs: t0 + 5))
        _ = try await client.recordDecisionCycle(RecordDecisionCycleRequest(modelID: "hyd", decisionsJSON: "[]", success: false, errorMessage: "timeout"))
        _ = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [ModelAnalytics(modelID: "hyd", payloadJSON: #"{"total_pnl_pct": 2}"#, serverTimeMs: t0)]))
        _ = try await client.saveTraderState(SaveTraderStateRequest(state: TraderState(traderID: "hyd", exchangeProvider: "x", marketProvider: "y")))
        let redis = try s.redis()
        let ns = s.namespace
        #expect(try await eventually { try redis.command(["EXISTS", ns + "trader:hyd:state"]).integer == 1 })
        let keys = ["positions:hyd", "trades:recent:hyd", "decision:last:hyd", "analytics:hyd", "since_inception:hyd",
                    "leaderboard", "leaderboard:cache", "trader:hyd:state"].map { ns + $0 }
        _ = try redis.command(["DEL"] + keys)

        // Another instance holds the lock: nothing happens here.
        _ = try redis.command(["SET", ns + "lock:hydrate", "someone-else", "PX", "5000"])
        let blocked = try await client.hydrate()
        #expect(!blocked.ran)
        _ = try redis.command(["DEL", ns + "lock:hydrate"])

        let result = try await client.hydrate()
        #expect(result.ran)
        #expect(result.models >= 1)
        #expect(try redis.command(["EXISTS"] + keys).integer == Int64(keys.count))
        #expect(try redis.command(["HGET", ns + "positions:hyd", "BTC"]).text?.contains("\"symbol\":\"BTC\"") == true)
        #expect(try redis.command(["LLEN", ns + "trades:recent:hyd"]).integer == 1)
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["hyd"])).differences.isEmpty)
        await client.close()
        await s.stop()
    }
}
