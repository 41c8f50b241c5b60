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

private let copyTicks = "COPY price_ticks (provider, symbol, price, ts_ms, volume, raw) FROM STDIN"

/// Newest tick per (provider, symbol) of a batch; the WHERE keeps a newer stored row.
/// Rows arrive sorted by (provider, symbol), so concurrent batches lock rows in one order (no deadlocks).
private let upsertLatest = Statement(name: "price_latest_upsert", sql: """
    INSERT INTO price_latest AS l (provider, symbol, price, ts_ms, raw)
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::int8[], $5::jsonb[])
    ON CONFLICT (provider, symbol) DO UPDATE SET price = EXCLUDED.price, ts_ms = EXCLUDED.ts_ms, raw = EXCLUDED.raw,
        updated_at = now()
    WHERE l.ts_ms < EXCLUDED.ts_ms
    RETURNING provider, symbol, price, ts_ms
    """)

struct IngestTicksBody: WriteBody {
    let ticks: [PriceTick]
    let keys: CacheKeys
    let ttl: CacheTTL

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let copied = try session.connection.copyIn(copyTicks, Self.copyText(ticks))
        var newest: [String: PriceTick] = [:]
        for t in ticks {
            let k = t.provider + "\u{0}" + t.symbol
            if let n = newest[k], n.timestampMs >= t.timestampMs { continue }
            newest[k] = t
        }
        let latest = newest.values.sorted { ($0.provider, $0.symbol) < ($1.provider, $1.symbol) }
        let advanced = try session.run(upsertLatest, [
            pgArray(latest.map(\.provider)), pgArray(latest.map(\.symbol)), pgArray(latest.map { pgText($0.price) }),
            pgArray(latest.map { String($0.timestampMs) }), pgArray(latest.map(\.rawJSON)),
        ])
        var limited: [RateLimitedMutation] = []
        for i in 0..<advanced.rowCount {
            let provider = advanced.string(i, 0) ?? "", symbol = advanced.string(i, 1) ?? ""
            let price = advanced.double(i, 2) ?? 0, ts = advanced.int(i, 3) ?? 0
            var j = JSONObjectWriter()
            j.number("price", price)
            j.int("ts_ms", ts)
            j.int("ts", ts)  // nof0's own field name for the same time (ms)
            let json = j.finish()
            limited.append(RateLimitedMutation(slot: "p:" + provider + ":" + symbol, version: ts,
                mutation: .set(key: keys.latestPrice(provider: provider, symbol: symbol), value: json, ttlSeconds: ttl.short)))
            limited.append(RateLimitedMutation(slot: "s:" + symbol, version: ts,
                mutation: .set(key: keys.latestPrice(symbol: symbol), value: json, ttlSeconds: ttl.short)))
            limited.append(RateLimitedMutation(slot: "c:" + symbol, version: ts,
                mutation: .hashSet(key: keys.cryptoPrices, field: symbol, value: pgText(price), ttlSeconds: ttl.short)))
        }
        let response = IngestPriceTicksResponse(stored: UInt32(clamping: copied), latestUpdated: UInt32(advanced.rowCount))
        return JobOutcome(reply: response.encodedPayload(), rateLimited: limited)
    }

    /// COPY text format: tab-separated, \N for NULL, backslash escapes in text.
    static func copyText(_ ticks: [PriceTick]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ticks.count * 64)
        for t in ticks {
            appendCopyField(t.provider, to: &out)
            out.append(9)
            appendCopyField(t.symbol, to: &out)
            out.append(9)
            out.append(contentsOf: pgText(t.price).utf8)
            out.append(9)
            out.append(contentsOf: String(t.timestampMs).utf8)
            out.append(9)
            if let v = t.volume { out.append(contentsOf: pgText(v).utf8) } else { out.append(contentsOf: [92, 78]) }
            out.append(9)
            if let raw = t.rawJSON { appendCopyField(raw, to: &out) } else { out.append(contentsOf: [92, 78]) }
            out.append(10)
        }
        return out
    }

    static func appendCopyField(_ s: String, to out: inout [UInt8]) {
        for b in s.utf8 {
            switch b {
            case 92: out.append(92); out.append(92)
            case 9: out.append(92); out.append(116)
            case 10: out.append(92); out.append(110)
            case 13: out.append(92); out.append(114)
            default: out.append(b)
            }
        }
    }
}

/// A Postgres array literal of text elements (nil = NULL), every element quoted.
func pgArray(_ items: [String?]) -> String {
    var out = "{"
    for (i, item) in items.enumerated() {
        if i > 0 { out += "," }
        guard let item else { out += "NULL"; continue }
        out += "\""
        for c in item.unicodeScalars {
            if c == "\"" || c == "\\" { out += "\\" }
            out.unicodeScalars.append(c)
        }
        out += "\""
    }
    return out + "}"
}

func pgArray(_ items: [String]) -> String { pgArray(items.map { Optional($0) }) }

private let upsertAsset = Statement(name: "market_asset_upsert", sql: """
    INSERT INTO market_assets AS a (provider, symbol, name, sz_decimals, max_leverage, only_isolated, margin_table_id, is_delisted)
    VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8::bool, false))
    ON CONFLICT (provider, symbol) DO UPDATE SET
        name = COALESCE(EXCLUDED.name, a.name), sz_decimals = COALESCE(EXCLUDED.sz_decimals, a.sz_decimals),
        max_leverage = COALESCE(EXCLUDED.max_leverage, a.max_leverage),
        only_isolated = COALESCE(EXCLUDED.only_isolated, a.only_isolated),
        margin_table_id = COALESCE(EXCLUDED.margin_table_id, a.margin_table_id),
        is_delisted = COALESCE($8::bool, a.is_delisted), updated_at = now()
    RETURNING name, sz_decimals, max_leverage, only_isolated, margin_table_id, is_delisted,
              (extract(epoch FROM updated_at) * 1000)::bigint
    """)

struct UpsertAssetsBody: WriteBody {
    let assets: [MarketAsset]
    let keys: CacheKeys
    let ttl: CacheTTL

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var limited: [RateLimitedMutation] = []
        for a in assets {
            let r = try session.run(upsertAsset, [
                a.provider, a.symbol, a.name, a.szDecimals.map(String.init), a.maxLeverage.map(pgText),
                a.onlyIsolated.map { $0 ? "true" : "false" }, a.marginTableID.map(String.init), a.isDelisted.map { $0 ? "true" : "false" },
            ])
            var j = JSONObjectWriter()
            j.string("provider", a.provider)
            j.string("symbol", a.symbol)
            j.string("name", r.string(0, 0))
            j.int("sz_decimals", r.int(0, 1))
            j.number("max_leverage", r.double(0, 2))
            j.bool("only_isolated", r.bool(0, 3))
            j.int("margin_table_id", r.int(0, 4))
            j.bool("is_delisted", r.bool(0, 5))
            j.int("updated_at_ms", r.int(0, 6))
            limited.append(RateLimitedMutation(slot: "a:" + a.provider + ":" + a.symbol, version: Int64(bitPattern: monotonicNanos()),
                mutation: .set(key: keys.marketAsset(provider: a.provider, symbol: a.symbol), value: j.finish(), ttlSeconds: ttl.long)))
        }
        return JobOutcome(reply: UpsertCountResponse(upserted: UInt32(assets.count)).encodedPayload(), rateLimited: limited)
    }
}

private let upsertContext = Statement(name: "market_ctx_upsert", sql: """
    INSERT INTO market_asset_ctx AS c (provider, symbol, funding, open_interest, oracle_px, mark_px, mid_px, impact_pxs,
                                       prev_day_px, day_ntl_vlm, day_base_vlm)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11)
    ON CONFLICT (provider, symbol) DO UPDATE SET
        funding = COALESCE(EXCLUDED.funding, c.funding), open_interest = COALESCE(EXCLUDED.open_interest, c.open_interest),
        oracle_px = COALESCE(EXCLUDED.oracle_px, c.oracle_px), mark_px = COALESCE(EXCLUDED.mark_px, c.mark_px),
        mid_px = COALESCE(EXCLUDED.mid_px, c.mid_px), impact_pxs = COALESCE(EXCLUDED.impact_pxs, c.impact_pxs),
        prev_day_px = COALESCE(EXCLUDED.prev_day_px, c.prev_day_px), day_ntl_vlm = COALESCE(EXCLUDED.day_ntl_vlm, c.day_ntl_vlm),
        day_base_vlm = COALESCE(EXCLUDED.day_base_vlm, c.day_base_vlm), updated_at = now()
    RETURNING funding, open_interest, oracle_px, mark_px, mid_px, impact_pxs::text, prev_day_px, day_ntl_vlm, day_base_vlm,
              (extract(epoch FROM updated_at) * 1000)::bigint
    """)

struct UpsertContextsBody: WriteBody {
    let contexts: [AssetContext]
    let keys: CacheKeys
    let ttl: CacheTTL

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var limited: [RateLimitedMutation] = []
        for c in contexts {
            let r = try session.run(upsertContext, [
                c.provider, c.symbol, c.funding.map(pgText), c.openInterest.map(pgText), c.oraclePx.map(pgText), c.markPx.map(pgText),
                c.midPx.map(pgText), c.impactPxsJSON, c.prevDayPx.map(pgText), c.dayNtlVlm.map(pgText), c.dayBaseVlm.map(pgText),
            ])
            var j = JSONObjectWriter()
            j.string("provider", c.provider)
            j.string("symbol", c.symbol)
            j.number("funding", r.double(0, 0))
            j.number("open_interest", r.double(0, 1))
            j.number("oracle_px", r.double(0, 2))
            j.number("mark_px", r.double(0, 3))
            j.number("mid_px", r.double(0, 4))
            j.raw("impact_pxs", r.string(0, 5))
            j.number("prev_day_px", r.double(0, 6))
            j.number("day_ntl_vlm", r.double(0, 7))
            j.number("day_base_vlm", r.double(0, 8))
            j.int("updated_at_ms", r.int(0, 9))
            limited.append(RateLimitedMutation(slot: "x:" + c.provider + ":" + c.symbol, version: Int64(bitPattern: monotonicNanos()),
                mutation: .set(key: keys.marketContext(provider: c.provider, symbol: c.symbol), value: j.finish(), ttlSeconds: ttl.medium)))
        }
        return JobOutcome(reply: UpsertCountResponse(upserted: UInt32(contexts.count)).encodedPayload(), rateLimited: limited)
    }
}
