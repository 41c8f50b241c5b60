import EngineStoreWire
import LibPQ

/// Market data: ticks (the volume path), latest prices, asset metadata and context.
/// Ticks go in with one COPY per batch; `price_latest` takes the newest tick per (provider, symbol)
/// of the batch and never moves back in time; cache keys go through the rate limiter.
struct MarketDataRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.ingestPriceTicks, .upsertMarketAssets, .upsertAssetContexts] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        let skew = context.configuration.maxClockSkewMs
        let keys = context.keys
        let ttl = context.configuration.ttl
        switch method {
        case .ingestPriceTicks:
            var r = try IngestPriceTicksRequest.decodeRequest(payload)
            try Validate.identifier(r.idempotencyKey, "idempotency_key")
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
            context.postgres.submit(IdempotentWrite(
                key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: IngestTicksBody(ticks: r.ticks, keys: keys, ttl: ttl), reply: reply))
        case .upsertMarketAssets:
            var r = try UpsertMarketAssetsRequest.decodeRequest(payload)
            try Validate.identifier(r.idempotencyKey, "idempotency_key")
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
            context.postgres.submit(IdempotentWrite(
                key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: UpsertAssetsBody(assets: r.assets, keys: keys, ttl: ttl), reply: reply))
        case .upsertAssetContexts:
            var r = try UpsertAssetContextsRequest.decodeRequest(payload)
            try Validate.identifier(r.idempotencyKey, "idempotency_key")
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
            context.postgres.submit(IdempotentWrite(
                key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: UpsertContextsBody(contexts: r.contexts, keys: keys, ttl: ttl), reply: reply))
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
        }
    }
}

struct IngestTicksBody: WriteBody {
    let ticks: [PriceTick]
    let keys: CacheKeys
    let ttl: CacheTTL

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let copied = try session.connection.copyIn(SQLText.priceTicksCopy.text, MarketDataStore.copyText(ticks))
        var newest: [String: PriceTick] = [:]
        for t in ticks {
            let k = t.provider + "\u{0}" + t.symbol
            if let n = newest[k], n.timestampMs >= t.timestampMs { continue }
            newest[k] = t
        }
        let latest = newest.values.sorted { ($0.provider, $0.symbol) < ($1.provider, $1.symbol) }
        let advanced = try session.rows(MarketDataStore.UpsertLatest(ticks: latest))
        let limited = advanced.flatMap { MarketDataStore.priceMutations($0, keys: keys, ttl: ttl) }
        let response = IngestPriceTicksResponse(stored: UInt32(clamping: copied), latestUpdated: UInt32(advanced.count))
        return JobOutcome(reply: response.encodedPayload(), rateLimited: limited)
    }
}

struct UpsertAssetsBody: WriteBody {
    let assets: [MarketAsset]
    let keys: CacheKeys
    let ttl: CacheTTL

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var limited: [RateLimitedMutation] = []
        for a in assets {
            guard let stored = try session.first(MarketDataStore.UpsertAsset(asset: a)) else { continue }
            limited.append(RateLimitedMutation(slot: "a:" + a.provider + ":" + a.symbol, version: Int64(bitPattern: monotonicNanos()),
                mutation: .set(key: keys.marketAsset(provider: a.provider, symbol: a.symbol), value: stored, ttlSeconds: ttl.long)))
        }
        return JobOutcome(reply: UpsertCountResponse(upserted: UInt32(assets.count)).encodedPayload(), rateLimited: limited)
    }
}

struct UpsertContextsBody: WriteBody {
    let contexts: [AssetContext]
    let keys: CacheKeys
    let ttl: CacheTTL

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var limited: [RateLimitedMutation] = []
        for c in contexts {
            guard let stored = try session.first(MarketDataStore.UpsertContext(context: c)) else { continue }
            limited.append(RateLimitedMutation(slot: "x:" + c.provider + ":" + c.symbol, version: Int64(bitPattern: monotonicNanos()),
                mutation: .set(key: keys.marketContext(provider: c.provider, symbol: c.symbol), value: stored, ttlSeconds: ttl.medium)))
        }
        return JobOutcome(reply: UpsertCountResponse(upserted: UInt32(contexts.count)).encodedPayload(), rateLimited: limited)
    }
}
