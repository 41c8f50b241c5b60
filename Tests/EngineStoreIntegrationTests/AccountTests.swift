import EngineStoreClient
import EngineStoreServer
import Foundation
import Hiredis
import LibPQ
import TestHarness
import Testing

let t0: Int64 = 1_764_201_600_000

@Suite struct SnapshotTests {
    @Test func snapshotStoresRowAndMarksPositions() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.savePosition(openRequest(model: "snap", symbol: "BTC"))
        let response = try await client.saveSnapshots(SaveSnapshotRequest(snapshots: [
            AccountSnapshot(modelID: "snap", timestampMs: t0, dollarEquity: 10_500, realizedPnl: 100, totalUnrealizedPnl: 400,
                            cumPnlPct: 5, sharpeRatio: 1.2, sinceInceptionHourlyMarker: 3, sinceInceptionMinuteMarker: 180,
                            metadataJSON: #"{"note":"x"}"#,
                            marks: [PositionMark(symbol: "btc", currentPrice: 120, unrealizedPnl: 29.6), PositionMark(symbol: "DOGE", currentPrice: 1)]),
        ]))
        #expect(response.results == [SnapshotResult(modelID: "snap", stored: true, lastStoredMs: t0, marksApplied: 1)])
        let pg = try s.postgres()
        let row = try pg.execParams("SELECT dollar_equity, realized_pnl, cum_pnl_pct, since_inception_minute_marker, metadata->>'note' FROM account_equity_snapshots WHERE model_id = 'snap'", [])
        #expect(row.rowCount == 1)
        #expect(row.double(0, 0) == 10_500)
        #expect(row.int(0, 3) == 180)
        #expect(row.string(0, 4) == "x")
        #expect(try pg.exec("SELECT current_price, unrealized_pnl FROM positions WHERE model_id = 'snap'").double(0, 0) == 120)
        let redis = try s.redis()
        #expect(try await eventually {
            (try redis.command(["HGET", s.namespace + "positions:snap", "BTC"]).text ?? "").contains("\"symbol\":\"BTC\"")
        })
        await client.close()
        await s.stop()
    }

    @Test func throttleHoldsButMarksStillApplyAndSameTimestampUpserts() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.savePosition(openRequest(model: "thr", symbol: "ETH"))
        func snap(_ ts: Int64, _ equity: Double, mark: Double? = nil) -> SaveSnapshotRequest {
            SaveSnapshotRequest(snapshots: [AccountSnapshot(modelID: "thr", timestampMs: ts, dollarEquity: equity,
                                                            marks: mark.map { [PositionMark(symbol: "ETH", currentPrice: $0)] } ?? [])])
        }
        #expect(try await client.saveSnapshots(snap(t0, 100)).results[0].stored)
        let throttled = try await client.saveSnapshots(snap(t0 + 60_000, 101, mark: 111))
        #expect(throttled.results[0] == SnapshotResult(modelID: "thr", stored: false, lastStoredMs: t0, marksApplied: 1))
        #expect(try s.postgres().exec("SELECT current_price FROM positions WHERE model_id = 'thr'").double(0, 0) == 111)
        // Same ts: upsert, not throttled, no second row.
        #expect(try await client.saveSnapshots(snap(t0, 150)).results[0].stored)
        #expect(try await client.saveSnapshots(snap(t0 + 300_000, 102)).results[0].stored)
        let rows = try s.postgres().exec("SELECT ts_ms, dollar_equity FROM account_equity_snapshots WHERE model_id = 'thr' ORDER BY ts_ms")
        #expect(rows.rowCount == 2)
        #expect(rows.double(0, 1) == 150)
        await client.close()
        await s.stop()
    }

    @Test func throttleHoldsAcrossTwoInstancesOnOneDatabase() async throws {
        let db = try await newDatabase()
        let a = try await RunningServer.start(database: db)
        let b = try await RunningServer.start(database: db)
        let ca = a.client(), cb = b.client()
        // 20 snapshots one second apart, sent concurrently through both instances: only one may be stored.
        let stored = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<20 {
                let client = i.isMultiple(of: 2) ? ca : cb
                group.addTask {
                    try await client.saveSnapshots(SaveSnapshotRequest(snapshots: [
                        AccountSnapshot(modelID: "multi", timestampMs: t0 + Int64(i) * 1000, dollarEquity: 1000),
                    ])).results[0].stored
                }
            }
            var n = 0
            for try await s in group where s { n += 1 }
            return n
        }
        #expect(stored == 1)
        #expect(try a.postgres().exec("SELECT count(*) FROM account_equity_snapshots WHERE model_id = 'multi'").int(0, 0) == 1)
        await ca.close(); await cb.close()
        await a.stop(); await b.stop()
    }

    @Test func batchFormAndThrottleOff() async throws {
        let s = try await RunningServer.start { $0.snapshotMinIntervalMs = 0 }
        let client = s.client()
        let batch = SaveSnapshotRequest(snapshots: (0..<5).map { AccountSnapshot(modelID: "b\($0)", timestampMs: t0, dollarEquity: 1) })
        #expect(try await client.saveSnapshots(batch).results.allSatisfy(\.stored))
        let again = SaveSnapshotRequest(snapshots: (0..<5).map { AccountSnapshot(modelID: "b\($0)", timestampMs: t0 + 1, dollarEquity: 2) })
        #expect(try await client.saveSnapshots(again).results.allSatisfy(\.stored))
        #expect(try s.postgres().exec("SELECT count(*) FROM account_equity_snapshots").int(0, 0) == 10)
        let dup = SaveSnapshotRequest(snapshots: [AccountSnapshot(modelID: "x", timestampMs: t0, dollarEquity: 1),
                                                  AccountSnapshot(modelID: "x", timestampMs: t0 + 1, dollarEquity: 1)])
        let error = await #expect(throws: EngineStoreError.self) { try await client.saveSnapshots(dup) }
        #expect(error?.code == .invalidArgument)
        await client.close()
        await s.stop()
    }
}

@Suite struct DecisionTests {
    @Test func decisionRowAndLastDecisionKey() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let trace = String(repeating: "thinking… ", count: 1 << 20 / 12)
        #expect(trace.utf8.count > 900_000)
        let saved = try await client.recordDecisionCycle(RecordDecisionCycleRequest(
            modelID: "dec", cycleNumber: 7, promptDigest: "sha256:abc", cotTrace: trace,
            decisionsJSON: #"[{"symbol":"btc","action":"open_long","confidence":0.8},{"symbol":"ETH","action":"hold"}]"#,
            success: true, executedAtMs: t0))
        #expect(saved.executedAtMs == t0)
        let pg = try s.postgres()
        let row = try pg.execParams("SELECT cycle_number, length(cot_trace), decisions->1->>'action', success FROM decision_cycles WHERE id = $1", [String(saved.id)])
        #expect(row.int(0, 0) == 7)
        #expect(row.int(0, 1) == Int64(trace.count))
        #expect(row.string(0, 2) == "hold")
        let redis = try s.redis()
        let key = s.namespace + "decision:last:dec"
        #expect(try await eventually { try redis.command(["EXISTS", key]).integer == 1 })
        let json = try #require(try redis.command(["GET", key]).text)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(o["symbol"] as? String == "BTC")
        #expect(o["action"] as? String == "open_long")
        #expect(o["timestamp_ms"] as? Int == Int(t0))
        #expect(o["success"] as? Bool == true)
        let ttl = try #require(try redis.command(["TTL", key]).integer)
        #expect(ttl > 0 && ttl <= 60)

        let cached = try await client.lastDecision(model: "dec")
        #expect(cached.source == .cache)
        #expect(cached.confidence == 1)  // nof0 keeps an integer: 0.8 rounds to 1
        #expect(try await s.cacheSettled())
        _ = try redis.command(["DEL", key])
        let fromDB = try await client.lastDecision(model: "dec")
        #expect(fromDB.source == .postgres)
        #expect(fromDB.confidence == 1)
        #expect(fromDB.symbol == "BTC")
        #expect(fromDB.action == "open_long")
        let missing = await #expect(throws: EngineStoreError.self) { try await client.lastDecision(model: "nobody") }
        #expect(missing?.code == .notFound)
        let bad = await #expect(throws: EngineStoreError.self) {
            try await client.recordDecisionCycle(RecordDecisionCycleRequest(modelID: "dec", decisionsJSON: "{}", success: true))
        }
        #expect(bad?.field == "decisions_json")
        await client.close()
        await s.stop()
    }
}

@Suite struct AnalyticsTests {
    func entry(_ model: String, _ pct: Double, at: Int64 = t0) -> ModelAnalytics {
        ModelAnalytics(modelID: model, payloadJSON: #"{"total_pnl_usd": \#(pct * 100), "total_pnl_pct": \#(pct), "sharpe_ratio": 1.5, "win_rate": 0.6}"#,
                       serverTimeMs: at)
    }

    @Test func analyticsKeysAndLeaderboardOrder() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [entry("alpha", 5), entry("beta", -2), entry("gamma", 12)]))
        _ = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [entry("beta", 20, at: t0 + 1)]))
        // An older payload never overwrites a newer one.
        let stale = try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [entry("beta", -50, at: t0)]))
        #expect(stale.updated == 0)

        let redis = try s.redis()
        #expect(try await eventually {
            try redis.command(["ZREVRANGE", s.namespace + "leaderboard", "0", "-1"]).array?.compactMap(\.text) == ["beta", "gamma", "alpha"]
        })
        let analytics = try #require(try redis.command(["GET", s.namespace + "analytics:beta"]).text)
        #expect(analytics.contains("\"total_pnl_pct\": 20"))
        #expect((try redis.command(["TTL", s.namespace + "analytics:beta"]).integer ?? 0) > 300)
        let since = try #require(try redis.command(["GET", s.namespace + "since_inception:gamma"]).text)
        #expect(since == #"{"total_pnl_usd":1200,"total_pnl_pct":12,"sharpe_ratio":1.5}"#)
        let rendered = try #require(try redis.command(["GET", s.namespace + "leaderboard:cache"]).text)
        let board = try #require(try JSONSerialization.jsonObject(with: Data(rendered.utf8)) as? [[String: Any]])
        #expect(board.map { $0["model_id"] as? String } == ["beta", "gamma", "alpha"])
        #expect(board.first?["rank"] as? Int == 1)

        let top = try await client.leaderboard(limit: 2)
        #expect(top.source == .cache)
        #expect(top.entries.map(\.modelID) == ["beta", "gamma"])
        #expect(try await s.cacheSettled())
        _ = try redis.command(["DEL", s.namespace + "leaderboard"])
        let fallback = try await client.leaderboard(limit: 10)
        #expect(fallback.source == .postgres)
        #expect(fallback.entries.map(\.modelID) == ["beta", "gamma", "alpha"])
        #expect(try s.postgres().exec("SELECT count(*) FROM model_analytics").int(0, 0) == 3)

        let bad = await #expect(throws: EngineStoreError.self) {
            try await client.updateAnalytics(UpdateAnalyticsRequest(entries: [ModelAnalytics(modelID: "x", payloadJSON: #"{"win_rate":1}"#, serverTimeMs: t0)]))
        }
        #expect(bad?.code == .invalidArgument)
        await client.close()
        await s.stop()
    }
}

@Suite struct TraderStateTests {
    @Test func stateSurvivesServiceRestartWithRedisFlushed() async throws {
        let db = try await newDatabase()
        let first = try await RunningServer.start(database: db)
        let client = first.client()
        let saved = try await client.saveTraderState(SaveTraderStateRequest(state: TraderState(
            traderID: "trader-1", exchangeProvider: "hyperliquid", marketProvider: "hyperliquid", allocationPct: 25,
            cooldownJSON: #"{"BTC": 1764201600000}"#, riskGuardsJSON: #"{"max_drawdown_pct": 20}"#,
            lastDecisionAtMs: t0, pauseUntilMs: t0 + 3_600_000)))
        #expect(saved.state.allocationPct == 25)
        // Partial update: only allocation changes.
        _ = try await client.saveTraderState(SaveTraderStateRequest(state: TraderState(traderID: "trader-1", allocationPct: 30)))
        let redis = try first.redis()
        let key = first.namespace + "trader:trader-1:state"
        #expect(try await eventually { (try redis.command(["GET", key]).text ?? "").contains("\"allocation_pct\":30") })
        let cachedJSON = try #require(try redis.command(["GET", key]).text)
        #expect(cachedJSON.contains("\"pause_until\":\"2025-11-27T01:00:00.000Z\""))
        let cached = try await client.traderState(trader: "trader-1")
        #expect(cached.source == .cache)
        #expect(cached.state.marketProvider == "hyperliquid")
        #expect(try await first.cacheSettled())
        await client.close()
        await first.stop()

        // "Flush" this test's Redis keys (Redis is shared with other tests), restart the service.
        _ = try redis.command(["DEL", key])
        // Without warm-up, so the read has to come from Postgres.
        let second = try await RunningServer.start(database: db) { $0.hydrateOnStart = false }
        let again = second.client()
        let restored = try await again.traderState(trader: "trader-1")
        #expect(restored.source == .postgres)
        #expect(restored.state.allocationPct == 30)
        #expect(restored.state.exchangeProvider == "hyperliquid")
        #expect(restored.state.pauseUntilMs == t0 + 3_600_000)
        #expect(restored.state.lastDecisionAtMs == t0)
        #expect(restored.state.riskGuardsJSON?.contains("max_drawdown_pct") == true)
        let missing = await #expect(throws: EngineStoreError.self) { try await again.traderState(trader: "nobody") }
        #expect(missing?.code == .notFound)
        let newWithoutProviders = await #expect(throws: EngineStoreError.self) {
            try await again.saveTraderState(SaveTraderStateRequest(state: TraderState(traderID: "fresh", allocationPct: 1)))
        }
        #expect(newWithoutProviders?.code == .invalidArgument)
        await again.close()
        await second.stop()
    }
}
