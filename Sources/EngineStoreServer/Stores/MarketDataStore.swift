import EngineStoreWire
import LibPQ

/// Market data (SQL/market_data.sql): ticks, latest prices, asset metadata and contexts, and their
/// cache documents (written through the rate limiter, never rebuilt: they are refreshed by the feed).
enum MarketDataStore {
    /// A latest price that moved forward.
    struct Latest {
        var provider, symbol: String
        var price: Double
        var timestampMs: Int64
    }

    /// The newest tick per (provider, symbol), sorted by them; returns the rows that moved forward.
    struct UpsertLatest: PGStatement {
        static let sql = SQLText.priceLatestUpsert
        let ticks: [PriceTick]
        var bindings: [String?] {
            [pgArray(ticks.map(\.provider)), pgArray(ticks.map(\.symbol)), pgArray(ticks.map { pgText($0.price) }),
             pgArray(ticks.map { String($0.timestampMs) }), pgArray(ticks.map(\.rawJSON))]
        }
        static func decode(_ r: PGRow) -> Latest {
            Latest(provider: r.string("provider") ?? "", symbol: r.string("symbol") ?? "", price: r.double("price") ?? 0,
                   timestampMs: r.int("ts_ms") ?? 0)
        }
    }

    /// IngestPriceTicks in one statement (pipelined batches): the ticks, the newest of each (provider,
    /// symbol) as `UpsertLatest` takes them, and the idempotency record with the reply; returns the
    /// latest prices that moved forward.
    struct Ingest: PGStatement {
        static let sql = SQLText.priceTicksIngest
        let ticks: [PriceTick]
        let latest: UpsertLatest
        let key: String, digest: String
        var bindings: [String?] {
            [pgArray(ticks.map(\.provider)), pgArray(ticks.map(\.symbol)), pgArray(ticks.map { pgText($0.price) }),
             pgArray(ticks.map { String($0.timestampMs) }), pgArray(ticks.map { $0.volume.map(pgText) }), pgArray(ticks.map(\.rawJSON))]
                + latest.bindings + [key, String(Method.ingestPriceTicks.rawValue), digest, String(ticks.count)]
        }
        static func decode(_ r: PGRow) -> Latest { UpsertLatest.decode(r) }
    }

    /// The newest tick per (provider, symbol), sorted by them: the rows `UpsertLatest` takes.
    /// On a tie the first in the batch wins.
    static func newest(_ ticks: [PriceTick]) -> [PriceTick] {
        // provider → symbol → the index of its newest tick: keyed apart, so no key string is built per tick.
        var newestOf: [String: [String: Int]] = [:]
        for i in ticks.indices {
            let provider = ticks[i].provider, symbol = ticks[i].symbol
            if let j = newestOf[provider]?[symbol], ticks[j].timestampMs >= ticks[i].timestampMs { continue }
            newestOf[provider, default: [:]][symbol] = i
        }
        return newestOf.values.flatMap(\.values).map { ticks[$0] }.sorted { ($0.provider, $0.symbol) < ($1.provider, $1.symbol) }
    }

    /// Upserts an asset; returns its document.
    struct UpsertAsset: PGStatement {
        static let sql = SQLText.marketAssetUpsert
        let asset: MarketAsset
        var bindings: [String?] {
            let a = asset
            return [a.provider, a.symbol, a.name, a.szDecimals.map(String.init), a.maxLeverage.map(pgText),
                    a.onlyIsolated.map(pgText), a.marginTableID.map(String.init), a.isDelisted.map(pgText)]
        }
        /// The asset document: provider, symbol, name, sz_decimals, max_leverage, only_isolated,
        /// margin_table_id, is_delisted, updated_at_ms.
        static func decode(_ r: PGRow) -> String {
            var j = JSONObjectWriter()
            j.string("provider", r.string("provider"))
            j.string("symbol", r.string("symbol"))
            j.string("name", r.string("name"))
            j.int("sz_decimals", r.int("sz_decimals"))
            j.number("max_leverage", r.double("max_leverage"))
            j.bool("only_isolated", r.bool("only_isolated"))
            j.int("margin_table_id", r.int("margin_table_id"))
            j.bool("is_delisted", r.bool("is_delisted"))
            j.int("updated_at_ms", r.int("updated_ms"))
            return j.finish()
        }
    }

    /// Upserts an asset context; returns its document.
    struct UpsertContext: PGStatement {
        static let sql = SQLText.marketCtxUpsert
        let context: AssetContext
        var bindings: [String?] {
            let c = context
            return [c.provider, c.symbol, c.funding.map(pgText), c.openInterest.map(pgText), c.oraclePx.map(pgText),
                    c.markPx.map(pgText), c.midPx.map(pgText), c.impactPxsJSON, c.prevDayPx.map(pgText), c.dayNtlVlm.map(pgText),
                    c.dayBaseVlm.map(pgText)]
        }
        /// The context document: provider, symbol, funding, open_interest, oracle_px, mark_px, mid_px,
        /// impact_pxs, prev_day_px, day_ntl_vlm, day_base_vlm, updated_at_ms.
        static func decode(_ r: PGRow) -> String {
            var j = JSONObjectWriter()
            j.string("provider", r.string("provider"))
            j.string("symbol", r.string("symbol"))
            for field in ["funding", "open_interest", "oracle_px", "mark_px", "mid_px"] { j.number(field, r.double(field)) }
            j.raw("impact_pxs", r.string("impact_pxs"))
            for field in ["prev_day_px", "day_ntl_vlm", "day_base_vlm"] { j.number(field, r.double(field)) }
            j.int("updated_at_ms", r.int("updated_ms"))
            return j.finish()
        }
    }

    // MARK: tick retention (one instance at a time, under a session advisory lock)

    /// True when this session took the lock.
    struct TryLockRetention: PGStatement {
        static let sql = SQLText.ticksRetentionTryLock
        let key: Int64
        var bindings: [String?] { [String(key)] }
        static func decode(_ r: PGRow) -> Bool { r.bool("locked") ?? false }
    }

    struct UnlockRetention: PGStatement {
        static let sql = SQLText.ticksRetentionUnlock
        let key: Int64
        var bindings: [String?] { [String(key)] }
    }

    struct TickSymbols: PGStatement {
        static let sql = SQLText.ticksRetentionSymbols
        var bindings: [String?] { [] }
        static func decode(_ r: PGRow) -> String { r.string("symbol") ?? "" }
    }

    /// Deletes up to `limit` ticks of `symbol` older than `cutoffMs`; the result tells how many.
    struct DeleteOldTicks: PGStatement {
        static let sql = SQLText.ticksRetentionDelete
        let symbol: String, cutoffMs: Int64, limit: Int
        var bindings: [String?] { [symbol, String(cutoffMs), String(limit)] }
    }

    /// A latest price's documents: price:<provider>:<symbol> and price:<symbol> ({price, ts_ms, ts}),
    /// and its field of the crypto prices hash.
    static func priceMutations(_ l: Latest, keys: CacheKeys, ttl: CacheTTL) -> [RateLimitedMutation] {
        var j = JSONObjectWriter()
        j.number("price", l.price)
        j.int("ts_ms", l.timestampMs)
        j.int("ts", l.timestampMs)  // nof0's own field name for the same time (ms)
        let json = j.finish()
        return [
            RateLimitedMutation(slot: "p:" + l.provider + ":" + l.symbol, version: l.timestampMs,
                mutation: .set(key: keys.latestPrice(provider: l.provider, symbol: l.symbol), value: json, ttlSeconds: ttl.short)),
            RateLimitedMutation(slot: "s:" + l.symbol, version: l.timestampMs,
                mutation: .set(key: keys.latestPrice(symbol: l.symbol), value: json, ttlSeconds: ttl.short)),
            RateLimitedMutation(slot: "c:" + l.symbol, version: l.timestampMs,
                mutation: .hashSet(key: keys.cryptoPrices, field: l.symbol, value: pgText(l.price), ttlSeconds: ttl.short)),
        ]
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
