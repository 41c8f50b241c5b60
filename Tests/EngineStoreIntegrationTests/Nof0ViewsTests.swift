import EngineSim
import EngineStoreClient
import Foundation
import LibPQ
import Testing

/// nof0's materialized views, refreshed by the service (`--refresh-views-interval`) over what
/// engine-sim writes, and the conversations engine-sim records.
@Suite struct Nof0ViewsTests {
    @Test func viewsFollowWhatEngineSimWrites() async throws {
        let s = try await RunningServer.start { $0.refreshViewsIntervalSeconds = 1 }
        let pg = try s.postgres()
        // Created by migrate, empty.
        #expect(try pg.exec("SELECT count(*) FROM v_leaderboard").int(0, 0) == 0)

        var config = Manager.Configuration()
        config.seed = 7
        config.traderPrefix = "views"
        config.startMs = 1_764_201_600_000
        let client = s.client()
        let manager = Manager(configuration: config, store: client)
        for _ in 0..<12 { try await manager.round() }
        await client.close()

        // One conversation (a prompt and a response) per decision, as nof0's executor records them.
        let cycles = try pg.exec("SELECT count(*) FROM decision_cycles").int(0, 0) ?? 0
        #expect(cycles > 0)
        #expect(try pg.exec("SELECT count(*) FROM conversations WHERE model_id LIKE 'views-%'").int(0, 0) == cycles)
        #expect(try pg.exec("SELECT count(*) FROM conversation_messages").int(0, 0) == 2 * cycles)

        let models = try pg.exec("SELECT count(DISTINCT model_id) FROM account_equity_snapshots").int(0, 0) ?? 0
        let snapshots = try pg.exec("SELECT count(*) FROM account_equity_snapshots").int(0, 0) ?? 0
        let prices = try pg.exec("SELECT count(*) FROM price_latest").int(0, 0) ?? 0
        #expect(models > 0 && prices > 0)
        // The view's figures are the tables' (nof0's definitions): trades and invocations per model. The
        // views are refreshed one after another, so a round that began before the last write may have
        // caught some of it: wait for a round that saw everything.
        #expect(try await eventually {
            try pg.exec("SELECT count(*) FROM v_leaderboard").int(0, 0) == models
                && pg.exec("SELECT count(*) FROM v_since_inception").int(0, 0) == snapshots
                && pg.exec("SELECT count(*) FROM v_crypto_prices_latest").int(0, 0) == prices
                && pg.exec("""
                    SELECT count(*) FROM v_leaderboard l
                    WHERE l.num_trades <> (SELECT count(*) FROM trades t WHERE t.model_id = l.model_id)
                       OR l.equity <> (SELECT dollar_equity FROM account_equity_snapshots a WHERE a.model_id = l.model_id
                                       ORDER BY ts_ms DESC LIMIT 1)
                    """).int(0, 0) == 0
                && pg.exec("""
                    SELECT count(*) FROM v_since_inception v
                    WHERE v.num_invocations <> (SELECT count(*) FROM decision_cycles d WHERE d.model_id = v.model_id)
                    """).int(0, 0) == 0
        })
        // nof0's own refresh function works on the schema migrate made.
        _ = try pg.exec("SELECT refresh_views_nof0()")
        await s.stop()
    }

    @Test func anotherInstanceHoldingTheLockMeansNoRefreshUntilItLetsGo() async throws {
        let s = try await RunningServer.start { $0.refreshViewsIntervalSeconds = 1 }
        let client = s.client()
        let pg = try s.postgres()
        let holder = try s.postgres()
        _ = try holder.exec("SELECT pg_advisory_lock(\(0x4553_5652))")
        _ = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: [
            PriceTick(provider: "hl", symbol: "BTC", price: 97_000, timestampMs: 1_764_201_600_000),
        ]))
        // A round of the service's refresher that started after the write found the lock taken (its
        // last statement is the failed try; a round that refreshes ends with the unlock): nothing refreshed.
        let since = try #require(try pg.exec("SELECT now()::text").string(0, 0))
        #expect(try await eventually {
            try pg.execParams("""
                SELECT count(*) FROM pg_stat_activity
                WHERE query = 'SELECT pg_try_advisory_lock($1)' AND state = 'idle' AND query_start > $1::timestamptz
                """, [since]).int(0, 0) == 1
        })
        #expect(try pg.exec("SELECT count(*) FROM v_crypto_prices_latest").int(0, 0) == 0)
        _ = try holder.exec("SELECT pg_advisory_unlock(\(0x4553_5652))")
        #expect(try await eventually { try pg.exec("SELECT count(*) FROM v_crypto_prices_latest").int(0, 0) == 1 })
        await client.close()
        await s.stop()
    }
}
