import EngineStoreClient
@testable import EngineStoreServer
import Foundation
import Hiredis
import LibPQ
import TestHarness
import Testing

@Suite struct MarketDataTests {
    func tick(_ symbol: String, _ price: Double, _ ts: Int64, provider: String = "hyperliquid", raw: String? = nil) -> PriceTick {
        PriceTick(provider: provider, symbol: symbol, price: price, timestampMs: ts, volume: 1.5, rawJSON: raw)
    }

    @Test func aBatchLandsCompletelyWithLatestPricesAndCaches() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        var ticks = (0..<1000).map { tick($0.isMultiple(of: 2) ? "BTC" : "eth", 100 + Double($0), t0 + Int64($0)) }
        ticks[3].rawJSON = #"{"note": "tab\there, newline\nthere, back\\slash"}"#
        let r = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: ticks))
        #expect(r.stored == 1000)
        #expect(r.latestUpdated == 2)
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT count(*) FROM price_ticks").int(0, 0) == 1000)
        #expect(try pg.exec("SELECT raw->>'note' FROM price_ticks WHERE ts_ms = \(t0 + 3)").string(0, 0) == "tab\there, newline\nthere, back\\slash")
        let latest = try pg.exec("SELECT symbol, price, ts_ms FROM price_latest ORDER BY symbol")
        #expect(latest.rowCount == 2)
        #expect(latest.string(0, 0) == "BTC")
        #expect(latest.double(0, 1) == 1098)
        #expect(latest.string(1, 0) == "ETH")
        #expect(latest.int(1, 2) == t0 + 999)
        let redis = try s.redis()
        #expect(try await eventually {
            try redis.command(["GET", s.namespace + "price:latest:hyperliquid:ETH"]).text == #"{"price":1099,"ts_ms":\#(t0 + 999),"ts":\#(t0 + 999)}"#
        })
        #expect(try redis.command(["GET", s.namespace + "price:latest:BTC"]).text == #"{"price":1098,"ts_ms":\#(t0 + 998),"ts":\#(t0 + 998)}"#)
        #expect(try redis.command(["HGET", s.namespace + "crypto_prices", "ETH"]).text == "1099.0")
        let ttl = try #require(try redis.command(["TTL", s.namespace + "price:latest:BTC"]).integer)
        #expect(ttl > 0 && ttl <= 10)
        await client.close()
        await s.stop()
    }

    @Test func olderTicksNeverOverwriteNewerEvenConcurrently() async throws {
        let s = try await RunningServer.start { $0.postgresConnections = 4; $0.marketCacheIntervalMs = 0 }
        let client = s.client()
        _ = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: [tick("SOL", 200, t0 + 10_000)]))
        // An out-of-order batch with older ticks: stored, but latest stays.
        let old = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: [tick("SOL", 150, t0 + 5_000)]))
        #expect(old.stored == 1)
        #expect(old.latestUpdated == 0)
        // Concurrent batches with interleaved timestamps: the newest wins in Postgres and Redis.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for b in 0..<20 {
                group.addTask {
                    let batch = (0..<50).map { i in self.tick("SOL", Double(300 + b * 50 + i), t0 + 20_000 + Int64((i * 20 + b) * 7 % 1000)) }
                    _ = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: batch))
                }
            }
            try await group.waitForAll()
        }
        let pg = try s.postgres()
        let newest = try pg.exec("SELECT price, ts_ms FROM price_ticks WHERE symbol = 'SOL' ORDER BY ts_ms DESC, price DESC LIMIT 1")
        let latest = try pg.exec("SELECT price, ts_ms FROM price_latest WHERE symbol = 'SOL'")
        #expect(latest.int(0, 1) == newest.int(0, 1))
        #expect(try pg.exec("SELECT count(*) FROM price_ticks").int(0, 0) == 1002)
        let redis = try s.redis()
        let expected = newest.int(0, 1)!
        #expect(try await eventually {
            (try redis.command(["GET", s.namespace + "price:latest:SOL"]).text ?? "").contains("\"ts_ms\":\(expected)")
        })
        await client.close()
        await s.stop()
    }

    /// The newest tick of each (provider, symbol) moves price_latest; on a tie of timestamps the first
    /// in the batch wins, through the pipelined statement (small batch) and through COPY (large).
    @Test(arguments: [false, true]) func onATieTheFirstTickOfTheBatchWins(large: Bool) async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        var ticks = [tick("ltc", 1, t0 + 5), tick("LTC", 2, t0 + 9), tick("ltc", 3, t0 + 9), tick("LTC", 4, t0 + 7),
                     tick("LTC", 5, t0 + 9, provider: "other"), tick("XMR", 6, t0 + 1)]
        if large { ticks += (0..<IngestTicksBody.pipelinedTicks).map { tick("FILL", 1, t0 + Int64($0)) } }
        let r = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: ticks))
        #expect(r.latestUpdated == (large ? 4 : 3))
        let latest = try s.postgres().exec("SELECT provider, symbol, price FROM price_latest WHERE symbol <> 'FILL' ORDER BY provider, symbol")
        #expect((0..<latest.rowCount).map { "\(latest.string($0, 0)!):\(latest.string($0, 1)!)=\(latest.double($0, 2)!)" }
                == ["hyperliquid:LTC=2.0", "hyperliquid:XMR=6.0", "other:LTC=5.0"])
        await client.close()
        await s.stop()
    }

    @Test func limiterWritesOncePerIntervalAndFlushesTheNewest() async throws {
        let s = try await RunningServer.start { $0.marketCacheIntervalMs = 400 }
        let client = s.client()
        let redis = try s.redis()
        let key = s.namespace + "price:latest:hyperliquid:DOGE"
        _ = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: [tick("DOGE", 1, t0)]))
        #expect(try await eventually { try redis.command(["GET", key]).text?.contains("\"price\":1,") == true })
        // Inside the interval: later prices are held back…
        for i in 2...5 {
            _ = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: [tick("DOGE", Double(i), t0 + Int64(i))]))
        }
        // …and the trailing write brings the newest (5). (Exact timing is checked in RateLimiterTests.)
        #expect(try await eventually(timeout: .seconds(3)) { try redis.command(["GET", key]).text?.contains("\"price\":5,") == true })
        #expect(try s.postgres().exec("SELECT count(*) FROM price_ticks WHERE symbol = 'DOGE'").int(0, 0) == 5)
        await client.close()
        await s.stop()
    }

    @Test func aRetriedBatchIsStoredOnce() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        let batch = IngestPriceTicksRequest(idempotencyKey: "batch-1", ticks: (0..<100).map { tick("ADA", 1 + Double($0), t0 + Int64($0)) })
        let first = try await client.ingestPriceTicks(batch)
        let again = try await client.ingestPriceTicks(batch)
        #expect(first == again)
        #expect(try s.postgres().exec("SELECT count(*) FROM price_ticks").int(0, 0) == 100)
        await client.close()
        await s.stop()
    }

    @Test(arguments: ["nan", "negative", "empty-symbol", "too-many", "bad-raw"])
    func invalidBatchesWriteNothing(_ kind: String) async throws {
        let s = try await RunningServer.start { $0.maxTicksPerBatch = 100 }
        let client = s.client()
        var ticks = (0..<10).map { tick("XRP", 1, t0 + Int64($0)) }
        switch kind {
        case "nan": ticks[5].price = .nan
        case "negative": ticks[9].price = -1
        case "empty-symbol": ticks[0].symbol = ""
        case "too-many": ticks = (0..<101).map { tick("XRP", 1, t0 + Int64($0)) }
        default: ticks[2].rawJSON = "{broken"
        }
        let error = await #expect(throws: EngineStoreError.self) { try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: ticks)) }
        #expect(error?.code == .invalidArgument)
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT count(*) FROM price_ticks").int(0, 0) == 0)
        #expect(try pg.exec("SELECT count(*) FROM price_latest").int(0, 0) == 0)
        await client.close()
        await s.stop()
    }

    /// Two UpsertMarketAssets naming BTC and ETH in opposite orders, on the two workers, made to meet:
    /// an outside transaction holds BTC's row, the first request waits for it, and the second starts
    /// while it waits. Had the second taken ETH first, once BTC's row is free each would hold one row
    /// and wait for the other, a deadlock Postgres breaks after `deadlock_timeout` by failing one. Both
    /// take BTC first (`LockOrder.marketRow`), so the second waits its turn and both succeed.
    @Test func upsertsNamingTheSameSymbolsInOtherOrdersNeverDeadlock() async throws {
        let s = try await RunningServer.start { $0.postgresConnections = 2; $0.marketCacheIntervalMs = 0 }
        let client = s.client()
        let pg = try s.postgres(), holder = try s.postgres()
        func assets(_ symbols: [String], _ name: String) -> UpsertMarketAssetsRequest {
            UpsertMarketAssetsRequest(assets: symbols.map { MarketAsset(provider: "hl", symbol: $0, name: name) })
        }
        func waiting() throws -> Int64 {
            try pg.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
                .int(0, 0) ?? 0
        }
        _ = try await client.upsertMarketAssets(assets(["BTC", "ETH"], "seed"))
        try holder.exec("BEGIN")
        _ = try holder.exec("SELECT 1 FROM market_assets WHERE provider = 'hl' AND symbol = 'BTC' FOR UPDATE")
        let first = Task { try await client.upsertMarketAssets(assets(["BTC", "ETH"], "first")) }
        #expect(try await eventually { try waiting() == 1 })
        // Round robin: the next request goes to the other worker, which must not hold ETH while it waits.
        let second = Task { try await client.upsertMarketAssets(assets(["ETH", "BTC"], "second")) }
        #expect(try await eventually { try waiting() == 2 })
        try holder.exec("COMMIT")
        #expect(try await first.value.upserted == 2)
        #expect(try await second.value.upserted == 2)
        let names = try pg.exec("SELECT symbol || '=' || name FROM market_assets ORDER BY symbol")
        #expect((0..<names.rowCount).map { names.string($0, 0) } == ["BTC=second", "ETH=second"], "the second committed last")
        let metrics = try await client.stats()
        #expect(!metrics.split(separator: "\n").contains { $0.hasPrefix("postgres_deadlocks_total") && !$0.hasSuffix(" 0") })
        await client.close()
        await s.stop()
    }

    @Test func assetsAndContextsUpsertWithTheirKeys() async throws {
        let s = try await RunningServer.start()
        let client = s.client()
        _ = try await client.upsertMarketAssets(UpsertMarketAssetsRequest(assets: [
            MarketAsset(provider: "hyperliquid", symbol: "BTC", name: "Bitcoin", szDecimals: 5, maxLeverage: 40, onlyIsolated: false, marginTableID: 1),
        ]))
        _ = try await client.upsertMarketAssets(UpsertMarketAssetsRequest(assets: [
            MarketAsset(provider: "hyperliquid", symbol: "BTC", maxLeverage: 50),
        ]))
        _ = try await client.upsertAssetContexts(UpsertAssetContextsRequest(contexts: [
            AssetContext(provider: "hyperliquid", symbol: "BTC", funding: 0.0001, openInterest: 1234, oraclePx: 97_000, markPx: 97_010,
                         midPx: 97_005, impactPxsJSON: "[97000, 97010]", prevDayPx: 95_000, dayNtlVlm: 1e9, dayBaseVlm: 10_000),
        ]))
        let pg = try s.postgres()
        let asset = try pg.exec("SELECT name, sz_decimals, max_leverage FROM market_assets")
        #expect(asset.rowCount == 1)
        #expect(asset.string(0, 0) == "Bitcoin")
        #expect(asset.double(0, 2) == 50)
        #expect(try pg.exec("SELECT impact_pxs->>1 FROM market_asset_ctx").string(0, 0) == "97010")
        let redis = try s.redis()
        #expect(try await eventually(timeout: .seconds(3)) {
            (try redis.command(["GET", s.namespace + "market:asset:hyperliquid:BTC"]).text ?? "").contains("\"max_leverage\":50")
        })
        #expect(try await eventually {
            (try redis.command(["GET", s.namespace + "market:ctx:hyperliquid:BTC"]).text ?? "").contains("\"mark_px\":97010")
        })
        #expect((try redis.command(["TTL", s.namespace + "market:asset:hyperliquid:BTC"]).integer ?? 0) > 60)
        await client.close()
        await s.stop()
    }
}
