/// IngestPriceTicks (method 48): a batch of price ticks. Every tick is stored; `price_latest` keeps
/// the newest per (provider, symbol); caches are written at most once per key per interval.
public struct PriceTick: WireMessage {
    public var provider: String
    public var symbol: String
    public var price: Double
    public var timestampMs: Int64
    public var volume: Double?
    /// JSON value kept in `raw`.
    public var rawJSON: String?

    public init(provider: String, symbol: String, price: Double, timestampMs: Int64, volume: Double? = nil, rawJSON: String? = nil) {
        self.provider = provider
        self.symbol = symbol
        self.price = price
        self.timestampMs = timestampMs
        self.volume = volume
        self.rawJSON = rawJSON
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var provider: String?, symbol: String?, price: Double?, ts: Int64?
        self.init(provider: "", symbol: "", price: 0, timestampMs: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "provider"); provider = try f.string("provider")
            case 2: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 3: try r.once(f, "price"); price = try f.double("price")
            case 4: try r.once(f, "timestamp_ms"); ts = try f.int64("timestamp_ms")
            case 5: try r.once(f, "volume"); volume = try f.double("volume")
            case 6: try r.once(f, "raw_json"); rawJSON = try f.string("raw_json")
            default: break
            }
        }
        self.provider = try required(provider, "provider")
        self.symbol = try required(symbol, "symbol")
        self.price = try required(price, "price")
        timestampMs = try required(ts, "timestamp_ms")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, provider)
        w.string(2, symbol)
        w.double(3, price)
        w.int(4, timestampMs)
        w.double(5, volume)
        w.string(6, rawJSON)
    }
}

public struct IngestPriceTicksRequest: WireMessage {
    public var idempotencyKey: String
    public var ticks: [PriceTick]

    public init(idempotencyKey: String = "", ticks: [PriceTick]) {
        self.idempotencyKey = idempotencyKey
        self.ticks = ticks
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?
        var ticks: [PriceTick] = []
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: ticks.append(try f.message("ticks"))
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        self.ticks = ticks
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.messages(2, ticks)
    }
}

public struct IngestPriceTicksResponse: WireMessage {
    /// Rows added to `price_ticks`.
    public var stored: UInt32
    /// (provider, symbol) pairs whose `price_latest` row this batch advanced.
    public var latestUpdated: UInt32

    public init(stored: UInt32, latestUpdated: UInt32) {
        self.stored = stored
        self.latestUpdated = latestUpdated
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init(stored: 0, latestUpdated: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "stored"); stored = try f.uint32("stored")
            case 2: try r.once(f, "latest_updated"); latestUpdated = try f.uint32("latest_updated")
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        w.uint(1, UInt64(stored))
        w.uint(2, UInt64(latestUpdated))
    }
}

/// UpsertMarketAssets (method 49): exchange asset metadata.
public struct MarketAsset: WireMessage {
    public var provider: String
    public var symbol: String
    public var name: String?
    public var szDecimals: Int64?
    public var maxLeverage: Double?
    public var onlyIsolated: Bool?
    public var marginTableID: Int64?
    public var isDelisted: Bool?

    public init(provider: String, symbol: String, name: String? = nil, szDecimals: Int64? = nil, maxLeverage: Double? = nil,
                onlyIsolated: Bool? = nil, marginTableID: Int64? = nil, isDelisted: Bool? = nil) {
        self.provider = provider
        self.symbol = symbol
        self.name = name
        self.szDecimals = szDecimals
        self.maxLeverage = maxLeverage
        self.onlyIsolated = onlyIsolated
        self.marginTableID = marginTableID
        self.isDelisted = isDelisted
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var provider: String?, symbol: String?
        self.init(provider: "", symbol: "")
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "provider"); provider = try f.string("provider")
            case 2: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 3: try r.once(f, "name"); name = try f.string("name")
            case 4: try r.once(f, "sz_decimals"); szDecimals = try f.int64("sz_decimals")
            case 5: try r.once(f, "max_leverage"); maxLeverage = try f.double("max_leverage")
            case 6: try r.once(f, "only_isolated"); onlyIsolated = try f.bool("only_isolated")
            case 7: try r.once(f, "margin_table_id"); marginTableID = try f.int64("margin_table_id")
            case 8: try r.once(f, "is_delisted"); isDelisted = try f.bool("is_delisted")
            default: break
            }
        }
        self.provider = try required(provider, "provider")
        self.symbol = try required(symbol, "symbol")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, provider)
        w.string(2, symbol)
        w.string(3, name)
        w.int(4, szDecimals)
        w.double(5, maxLeverage)
        w.bool(6, onlyIsolated)
        w.int(7, marginTableID)
        w.bool(8, isDelisted)
    }
}

public struct UpsertMarketAssetsRequest: WireMessage {
    public var idempotencyKey: String
    public var assets: [MarketAsset]

    public init(idempotencyKey: String = "", assets: [MarketAsset]) {
        self.idempotencyKey = idempotencyKey
        self.assets = assets
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?
        var assets: [MarketAsset] = []
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: assets.append(try f.message("assets"))
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        self.assets = assets
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.messages(2, assets)
    }
}

/// UpsertAssetContexts (method 50): per-asset market context (funding, open interest, prices, volumes).
public struct AssetContext: WireMessage {
    public var provider: String
    public var symbol: String
    public var funding: Double?
    public var openInterest: Double?
    public var oraclePx: Double?
    public var markPx: Double?
    public var midPx: Double?
    /// JSON array for `impact_pxs`.
    public var impactPxsJSON: String?
    public var prevDayPx: Double?
    public var dayNtlVlm: Double?
    public var dayBaseVlm: Double?

    public init(provider: String, symbol: String, funding: Double? = nil, openInterest: Double? = nil, oraclePx: Double? = nil,
                markPx: Double? = nil, midPx: Double? = nil, impactPxsJSON: String? = nil, prevDayPx: Double? = nil,
                dayNtlVlm: Double? = nil, dayBaseVlm: Double? = nil) {
        self.provider = provider
        self.symbol = symbol
        self.funding = funding
        self.openInterest = openInterest
        self.oraclePx = oraclePx
        self.markPx = markPx
        self.midPx = midPx
        self.impactPxsJSON = impactPxsJSON
        self.prevDayPx = prevDayPx
        self.dayNtlVlm = dayNtlVlm
        self.dayBaseVlm = dayBaseVlm
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var provider: String?, symbol: String?
        self.init(provider: "", symbol: "")
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "provider"); provider = try f.string("provider")
            case 2: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 3: try r.once(f, "funding"); funding = try f.double("funding")
            case 4: try r.once(f, "open_interest"); openInterest = try f.double("open_interest")
            case 5: try r.once(f, "oracle_px"); oraclePx = try f.double("oracle_px")
            case 6: try r.once(f, "mark_px"); markPx = try f.double("mark_px")
            case 7: try r.once(f, "mid_px"); midPx = try f.double("mid_px")
            case 8: try r.once(f, "impact_pxs_json"); impactPxsJSON = try f.string("impact_pxs_json")
            case 9: try r.once(f, "prev_day_px"); prevDayPx = try f.double("prev_day_px")
            case 10: try r.once(f, "day_ntl_vlm"); dayNtlVlm = try f.double("day_ntl_vlm")
            case 11: try r.once(f, "day_base_vlm"); dayBaseVlm = try f.double("day_base_vlm")
            default: break
            }
        }
        self.provider = try required(provider, "provider")
        self.symbol = try required(symbol, "symbol")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, provider)
        w.string(2, symbol)
        w.double(3, funding)
        w.double(4, openInterest)
        w.double(5, oraclePx)
        w.double(6, markPx)
        w.double(7, midPx)
        w.string(8, impactPxsJSON)
        w.double(9, prevDayPx)
        w.double(10, dayNtlVlm)
        w.double(11, dayBaseVlm)
    }
}

public struct UpsertAssetContextsRequest: WireMessage {
    public var idempotencyKey: String
    public var contexts: [AssetContext]

    public init(idempotencyKey: String = "", contexts: [AssetContext]) {
        self.idempotencyKey = idempotencyKey
        self.contexts = contexts
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?
        var contexts: [AssetContext] = []
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: contexts.append(try f.message("contexts"))
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        self.contexts = contexts
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.messages(2, contexts)
    }
}

/// Reply of UpsertMarketAssets and UpsertAssetContexts.
public struct UpsertCountResponse: WireMessage {
    public var upserted: UInt32
    public init(upserted: UInt32) { self.upserted = upserted }
    public init(from r: inout FieldReader) throws(WireError) {
        var n: UInt32 = 0
        while let f = try r.next() {
            if f.number == 1 { try r.once(f, "upserted"); n = try f.uint32("upserted") }
        }
        upserted = n
    }
    public func encode(into w: inout FieldWriter) { w.uint(1, UInt64(upserted)) }
}
