@testable import EngineStoreServer
import EngineStoreWire
import Testing

/// Market-data writes lock `price_latest`, `market_assets` and `market_asset_ctx` rows. Their lock
/// keys put those locks in the one global order, so two requests on the same symbols never wait on
/// each other in a cycle, while the writes still spread over every worker.
@Suite struct MarketLockOrderTests {
    let keys = CacheKeys(namespace: "nof0:")

    func ticks(_ pairs: [(String, String)]) -> IngestTicksBody {
        IngestTicksBody(ticks: pairs.enumerated().map { i, p in
            PriceTick(provider: p.0, symbol: p.1, price: 1, timestampMs: 1_764_201_600_000 + Int64(i))
        }, keys: keys, ttl: CacheTTL())
    }

    /// The keys ascend as the (provider, symbol) pairs the upsert takes in turn, also when one
    /// provider is a prefix of another (the separator sorts below '-') or holds a '|'.
    @Test func tickKeysAscendInTheOrderTheUpsertTakesItsRows() {
        let body = ticks([("hl", "SOL"), ("hl-x", "A"), ("hl", "BTC"), ("h|l", "Z"), ("hl", "SOL"), ("hl", "ETH")])
        #expect(body.latest.map { $0.provider + "/" + $0.symbol } == ["hl/BTC", "hl/ETH", "hl/SOL", "hl-x/A", "h|l/Z"])
        #expect(body.lockKeys == body.latest.map { LockOrder.marketRow("l", $0.provider, $0.symbol) })
        #expect(body.lockKeys == body.lockKeys.sorted())
        #expect(body.lockKeys.allSatisfy { !LockOrder.pinsWorker($0) }, "market data runs on any worker")
        #expect(LockOrder.pinsWorker(LockOrder.position("m", "BTC")))
    }

    /// Items run in their rows' order whatever order the request names them in; two items of one
    /// row keep the request's order (the last one sent is the one stored).
    @Test func documentUpsertsRunInLockOrder() {
        func asset(_ provider: String, _ symbol: String, _ name: String) -> UpsertDocumentsBody<MarketDataStore.UpsertAsset>.Item {
            .init(upsert: MarketDataStore.UpsertAsset(asset: MarketAsset(provider: provider, symbol: symbol, name: name)),
                  slot: "a:" + provider + ":" + symbol, key: name, lockKey: LockOrder.marketRow("a", provider, symbol))
        }
        let body = UpsertDocumentsBody(items: [asset("hl", "ETH", "1"), asset("hl", "BTC", "2"), asset("hl", "ETH", "3"),
                                               asset("hl", "BTC", "4")], ttlSeconds: 60)
        #expect(body.items.map(\.key) == ["2", "4", "1", "3"])
        #expect(body.lockKeys == [LockOrder.marketRow("a", "hl", "BTC"), LockOrder.marketRow("a", "hl", "ETH")])
    }

    /// Two ticks requests whose rows interleave (BTC+SOL, then ETH) cannot share a transaction in
    /// that order: SOL would be locked before ETH. Requests on apart symbols share one, and so does
    /// a request whose rows below the highest are ones the transaction already holds (no wait),
    /// unless it shares a row with a request put off (the requests of a row keep their order).
    @Test func ticksRequestsWhoseRowsInterleaveCommitApart() {
        func job(_ keys: [String]) -> PipelineUnitsTests.FakeJob { .init(slot: nil, keys: keys) }
        let wide = job(ticks([("hl", "SOL"), ("hl", "BTC")]).lockKeys)
        let middle = job(ticks([("hl", "ETH")]).lockKeys)
        let apart = job(ticks([("hl", "XRP")]).lockKeys)
        #expect(LockOrder.rounds([wide, middle]).map { $0.map(\.lockKeys.count) } == [[2], [1]])
        #expect(LockOrder.rounds([wide, apart]).map(\.count) == [2])
        let again = job(ticks([("hl", "BTC")]).lockKeys)
        let againAndAbove = job(ticks([("hl", "BTC"), ("hl", "XRP")]).lockKeys)
        let againAndBetween = job(ticks([("hl", "BTC"), ("hl", "ETH")]).lockKeys)
        #expect(LockOrder.rounds([wide, middle, apart, again, againAndAbove, againAndBetween]).map { $0.map(\.lockKeys) }
                == [[wide, again, againAndAbove, apart].map(\.lockKeys), [againAndBetween, middle].map(\.lockKeys)])
        // BTC+ETH is put off, so the BTC request after it waits too, though BTC is held.
        #expect(LockOrder.rounds([wide, againAndBetween, again]).map { $0.map(\.lockKeys) }
                == [[wide.lockKeys], [againAndBetween, again].map(\.lockKeys)])
    }
}
