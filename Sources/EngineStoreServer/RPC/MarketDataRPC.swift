import EngineStoreWire
import LibPQ

/// Market data: ticks (the volume path), latest prices, asset metadata and context.
/// Ticks go in with one statement per batch (see `IngestTicksBody`); `price_latest` takes the newest
/// tick per (provider, symbol) of the batch and never moves back in time; cache keys go through the
/// rate limiter.
struct MarketDataRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.ingestPriceTicks, .upsertMarketAssets, .upsertAssetContexts] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        let skew = context.configuration.maxClockSkewMs
        let keys = context.keys
        let ttl = context.configuration.ttl
        switch method {
        case .ingestPriceTicks:
            var r = try IngestPriceTicksRequest.decodeWrite(payload)
            guard !r.ticks.isEmpty else { throw .invalid("ticks", "at least one tick") }
            guard r.ticks.count <= context.configuration.maxTicksPerBatch else {
                throw .invalid("ticks", "at most \(context.configuration.maxTicksPerBatch) per batch")
            }
            for i in r.ticks.indices {
                try Validate.keyPart(r.ticks[i].provider, "ticks.provider", maxBytes: 64)
                r.ticks[i].symbol = try Validate.symbol(r.ticks[i].symbol, "ticks.symbol")
                try Validate.positive(r.ticks[i].price, "ticks.price")
                try Validate.timestampMs(r.ticks[i].timestampMs, "ticks.timestamp_ms", maxSkewMs: skew)
                try Validate.nonNegative(r.ticks[i].volume, "ticks.volume")
                try Validate.text(r.ticks[i].rawJSON, "ticks.raw_json", maxBytes: 16 * 1024)
                if let raw = r.ticks[i].rawJSON { try Validate.jsonDepth(raw, "ticks.raw_json") }
            }
            context.submitWrite(r, method, payload: payload,
                body: IngestTicksBody(ticks: r.ticks, keys: keys, ttl: ttl), reply: reply)
        case .upsertMarketAssets:
            var r = try UpsertMarketAssetsRequest.decodeWrite(payload)
            guard !r.assets.isEmpty, r.assets.count <= 10_000 else { throw .invalid("assets", "1 to 10000 per call") }
            for i in r.assets.indices {
                try Validate.keyPart(r.assets[i].provider, "assets.provider", maxBytes: 64)
                r.assets[i].symbol = try Validate.symbol(r.assets[i].symbol, "assets.symbol")
                try Validate.text(r.assets[i].name, "assets.name", maxBytes: 256)
                try Validate.positive(r.assets[i].maxLeverage, "assets.max_leverage")
                for (v, f) in [(r.assets[i].szDecimals, "assets.sz_decimals"), (r.assets[i].marginTableID, "assets.margin_table_id")] {
                    if let v, v < 0 || v > Int64(Int32.max) { throw .invalid(f, "out of INT range") }
                }
            }
            context.submitWrite(r, method, payload: payload,
                body: UpsertDocumentsBody(items: r.assets.map { a in
                    .init(upsert: MarketDataStore.UpsertAsset(asset: a), slot: "a:" + a.provider + ":" + a.symbol,
                          key: keys.marketAsset(provider: a.provider, symbol: a.symbol),
                          lockKey: LockOrder.marketRow("a", a.provider, a.symbol))
                }, ttlSeconds: ttl.long), reply: reply)
        case .upsertAssetContexts:
            var r = try UpsertAssetContextsRequest.decodeWrite(payload)
            guard !r.contexts.isEmpty, r.contexts.count <= 10_000 else { throw .invalid("contexts", "1 to 10000 per call") }
            for i in r.contexts.indices {
                let c = r.contexts[i]
                try Validate.keyPart(c.provider, "contexts.provider", maxBytes: 64)
                r.contexts[i].symbol = try Validate.symbol(c.symbol, "contexts.symbol")
                try Validate.finite(c.funding, "contexts.funding")
                try Validate.nonNegative(c.openInterest, "contexts.open_interest")
                for (v, f) in [(c.oraclePx, "contexts.oracle_px"), (c.markPx, "contexts.mark_px"), (c.midPx, "contexts.mid_px"),
                               (c.prevDayPx, "contexts.prev_day_px")] {
                    try Validate.positive(v, f)
                }
                try Validate.nonNegative(c.dayNtlVlm, "contexts.day_ntl_vlm")
                try Validate.nonNegative(c.dayBaseVlm, "contexts.day_base_vlm")
                try Validate.json(c.impactPxsJSON, "contexts.impact_pxs_json")
            }
            context.submitWrite(r, method, payload: payload,
                body: UpsertDocumentsBody(items: r.contexts.map { c in
                    .init(upsert: MarketDataStore.UpsertContext(context: c), slot: "x:" + c.provider + ":" + c.symbol,
                          key: keys.marketContext(provider: c.provider, symbol: c.symbol),
                          lockKey: LockOrder.marketRow("c", c.provider, c.symbol))
                }, ttlSeconds: ttl.medium), reply: reply)
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
        }
    }
}

/// A batch of ticks. Up to `pipelinedTicks` of them go in one statement that also records the reply, so
/// the request rides in its batch's pipeline with the other writes (`MarketDataStore.Ingest`); larger
/// batches, and any request on the step-by-step path, go in by COPY, which is cheaper per row but
/// cannot be pipelined (`bench/ticks`: batches of 1000).
struct IngestTicksBody: PipelinableWrite {
    static let pipelinedTicks = 500
    let ticks: [PriceTick]
    /// The newest tick of each (provider, symbol), sorted: the `price_latest` rows it upserts, in
    /// that order.
    let latest: [PriceTick]
    let keys: CacheKeys
    let ttl: CacheTTL
    /// The `price_latest` rows it locks: two requests on the same symbols in one transaction take
    /// them in one order with every other transaction (`LockOrder`).
    let lockKeys: [String]

    init(ticks: [PriceTick], keys: CacheKeys, ttl: CacheTTL) {
        self.ticks = ticks
        self.latest = MarketDataStore.newest(ticks)
        self.keys = keys
        self.ttl = ttl
        self.lockKeys = latest.map { LockOrder.marketRow("l", $0.provider, $0.symbol) }
    }

    var canPipeline: Bool { ticks.count <= Self.pipelinedTicks }

    func pipelined(key: String, digest: String) -> [PGCall] {
        [MarketDataStore.Ingest(ticks: ticks, latest: .init(ticks: latest), key: key, digest: digest).call]
    }

    func outcome(_ results: [PGResult]) throws -> JobOutcome {
        outcome(stored: ticks.count, advanced: MarketDataStore.Ingest.rows(results[0]))
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let copied = try session.connection.copyIn(SQLText.priceTicksCopy.text, MarketDataStore.copyText(ticks))
        return outcome(stored: copied, advanced: try session.rows(MarketDataStore.UpsertLatest(ticks: latest)))
    }

    func outcome(stored: Int, advanced: [MarketDataStore.Latest]) -> JobOutcome {
        let response = IngestPriceTicksResponse(stored: UInt32(clamping: stored), latestUpdated: UInt32(advanced.count))
        return JobOutcome(reply: response.encodedPayload(),
                          rateLimited: advanced.flatMap { MarketDataStore.priceMutations($0, keys: keys, ttl: ttl) })
    }
}

/// UpsertMarketAssets and UpsertAssetContexts: one upsert per item, in the order of their rows' lock
/// keys (two requests naming the same symbols in other orders would otherwise deadlock); each stored
/// document goes to its key through the rate limiter. The reply counts the items sent.
struct UpsertDocumentsBody<Upsert: PGStatement>: WriteBody where Upsert.Row == String {
    struct Item: Sendable {
        let upsert: Upsert
        /// The rate limiter's slot: a letter for the kind of document, then provider:symbol.
        let slot: String
        let key: String
        /// Its row's `LockOrder.marketRow`.
        let lockKey: String
    }

    /// Sorted by lock key; items of one row keep their request order (the last one sent is stored).
    let items: [Item]
    let ttlSeconds: Int
    let lockKeys: [String]

    init(items: [Item], ttlSeconds: Int) {
        self.items = items.indices.sorted { (items[$0].lockKey, $0) < (items[$1].lockKey, $1) }.map { items[$0] }
        self.ttlSeconds = ttlSeconds
        var keys: [String] = []
        for item in self.items where item.lockKey != keys.last { keys.append(item.lockKey) }
        self.lockKeys = keys
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var limited: [RateLimitedMutation] = []
        for item in items {
            guard let stored = try session.first(item.upsert) else { continue }
            limited.append(RateLimitedMutation(slot: item.slot, version: Int64(bitPattern: monotonicNanos()),
                mutation: .set(key: item.key, value: stored, ttlSeconds: ttlSeconds)))
        }
        return JobOutcome(reply: UpsertCountResponse(upserted: UInt32(items.count)).encodedPayload(), rateLimited: limited)
    }
}
