/// SaveSnapshot (method 32): one or many traders' account equity snapshots, each with the
/// mark-to-market of that trader's open positions, throttled per trader.
public struct PositionMark: WireMessage {
    public var symbol: String
    public var currentPrice: Double
    public var unrealizedPnl: Double?
    public var liquidationPrice: Double?

    public init(symbol: String, currentPrice: Double, unrealizedPnl: Double? = nil, liquidationPrice: Double? = nil) {
        self.symbol = symbol
        self.currentPrice = currentPrice
        self.unrealizedPnl = unrealizedPnl
        self.liquidationPrice = liquidationPrice
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var symbol: String?, price: Double?
        self.init(symbol: "", currentPrice: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 2: try r.once(f, "current_price"); price = try f.double("current_price")
            case 3: try r.once(f, "unrealized_pnl"); unrealizedPnl = try f.double("unrealized_pnl")
            case 4: try r.once(f, "liquidation_price"); liquidationPrice = try f.double("liquidation_price")
            default: break
            }
        }
        self.symbol = try required(symbol, "symbol")
        currentPrice = try required(price, "current_price")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, symbol)
        w.double(2, currentPrice)
        w.double(3, unrealizedPnl)
        w.double(4, liquidationPrice)
    }
}

public struct AccountSnapshot: WireMessage {
    public var modelID: String
    public var timestampMs: Int64
    public var dollarEquity: Double
    public var realizedPnl: Double?
    public var totalUnrealizedPnl: Double?
    public var cumPnlPct: Double?
    public var sharpeRatio: Double?
    public var sinceInceptionHourlyMarker: Int64?
    public var sinceInceptionMinuteMarker: Int64?
    /// JSON object for `metadata`.
    public var metadataJSON: String?
    public var marks: [PositionMark]

    public init(modelID: String, timestampMs: Int64, dollarEquity: Double, realizedPnl: Double? = nil,
                totalUnrealizedPnl: Double? = nil, cumPnlPct: Double? = nil, sharpeRatio: Double? = nil,
                sinceInceptionHourlyMarker: Int64? = nil, sinceInceptionMinuteMarker: Int64? = nil,
                metadataJSON: String? = nil, marks: [PositionMark] = []) {
        self.modelID = modelID
        self.timestampMs = timestampMs
        self.dollarEquity = dollarEquity
        self.realizedPnl = realizedPnl
        self.totalUnrealizedPnl = totalUnrealizedPnl
        self.cumPnlPct = cumPnlPct
        self.sharpeRatio = sharpeRatio
        self.sinceInceptionHourlyMarker = sinceInceptionHourlyMarker
        self.sinceInceptionMinuteMarker = sinceInceptionMinuteMarker
        self.metadataJSON = metadataJSON
        self.marks = marks
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var model: String?, ts: Int64?, equity: Double?
        self.init(modelID: "", timestampMs: 0, dollarEquity: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); model = try f.string("model_id")
            case 2: try r.once(f, "timestamp_ms"); ts = try f.int64("timestamp_ms")
            case 3: try r.once(f, "dollar_equity"); equity = try f.double("dollar_equity")
            case 4: try r.once(f, "realized_pnl"); realizedPnl = try f.double("realized_pnl")
            case 5: try r.once(f, "total_unrealized_pnl"); totalUnrealizedPnl = try f.double("total_unrealized_pnl")
            case 6: try r.once(f, "cum_pnl_pct"); cumPnlPct = try f.double("cum_pnl_pct")
            case 7: try r.once(f, "sharpe_ratio"); sharpeRatio = try f.double("sharpe_ratio")
            case 8: try r.once(f, "since_inception_hourly_marker"); sinceInceptionHourlyMarker = try f.int64("since_inception_hourly_marker")
            case 9: try r.once(f, "since_inception_minute_marker"); sinceInceptionMinuteMarker = try f.int64("since_inception_minute_marker")
            case 10: try r.once(f, "metadata_json"); metadataJSON = try f.string("metadata_json")
            case 11: marks.append(try f.message("marks"))
            default: break
            }
        }
        modelID = try required(model, "model_id")
        timestampMs = try required(ts, "timestamp_ms")
        dollarEquity = try required(equity, "dollar_equity")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.int(2, timestampMs)
        w.double(3, dollarEquity)
        w.double(4, realizedPnl)
        w.double(5, totalUnrealizedPnl)
        w.double(6, cumPnlPct)
        w.double(7, sharpeRatio)
        w.int(8, sinceInceptionHourlyMarker)
        w.int(9, sinceInceptionMinuteMarker)
        w.string(10, metadataJSON)
        w.messages(11, marks)
    }
}

public struct SaveSnapshotRequest: WireMessage {
    public var idempotencyKey: String
    /// One snapshot per trader (at most one per model id in a call).
    public var snapshots: [AccountSnapshot]

    public init(idempotencyKey: String = "", snapshots: [AccountSnapshot]) {
        self.idempotencyKey = idempotencyKey
        self.snapshots = snapshots
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?
        var snapshots: [AccountSnapshot] = []
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: snapshots.append(try f.message("snapshots"))
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        self.snapshots = snapshots
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.messages(2, snapshots)
    }
}

public struct SnapshotResult: WireMessage {
    public var modelID: String
    /// False when throttled: a snapshot was stored less than the minimum interval before.
    public var stored: Bool
    /// Time of the newest stored snapshot of this trader after the call.
    public var lastStoredMs: Int64
    /// Open positions whose marks were applied (also when throttled).
    public var marksApplied: UInt32

    public init(modelID: String, stored: Bool, lastStoredMs: Int64, marksApplied: UInt32) {
        self.modelID = modelID
        self.stored = stored
        self.lastStoredMs = lastStoredMs
        self.marksApplied = marksApplied
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init(modelID: "", stored: false, lastStoredMs: 0, marksApplied: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); modelID = try f.string("model_id")
            case 2: try r.once(f, "stored"); stored = try f.bool("stored")
            case 3: try r.once(f, "last_stored_ms"); lastStoredMs = try f.int64("last_stored_ms")
            case 4: try r.once(f, "marks_applied"); marksApplied = try f.uint32("marks_applied")
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.bool(2, stored)
        w.int(3, lastStoredMs)
        w.uint(4, UInt64(marksApplied))
    }
}

public struct SaveSnapshotResponse: WireMessage {
    public var results: [SnapshotResult]

    public init(results: [SnapshotResult]) { self.results = results }

    public init(from r: inout FieldReader) throws(WireError) {
        var results: [SnapshotResult] = []
        while let f = try r.next() {
            if f.number == 1 { results.append(try f.message("results")) }
        }
        self.results = results
    }

    public func encode(into w: inout FieldWriter) { w.messages(1, results) }
}
