/// UpdateAnalytics (method 34): one or many models' analytics payloads.
public struct ModelAnalytics: WireMessage {
    public var modelID: String
    /// JSON object with keys such as total_pnl_usd, total_pnl_pct (required: the leaderboard score),
    /// sharpe_ratio, win_rate, total_trades, max_drawdown_pct.
    public var payloadJSON: String
    public var serverTimeMs: Int64
    public var metadataJSON: String?

    public init(modelID: String, payloadJSON: String, serverTimeMs: Int64, metadataJSON: String? = nil) {
        self.modelID = modelID
        self.payloadJSON = payloadJSON
        self.serverTimeMs = serverTimeMs
        self.metadataJSON = metadataJSON
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var model: String?, payload: String?, time: Int64?
        self.init(modelID: "", payloadJSON: "", serverTimeMs: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); model = try f.string("model_id")
            case 2: try r.once(f, "payload_json"); payload = try f.string("payload_json")
            case 3: try r.once(f, "server_time_ms"); time = try f.int64("server_time_ms")
            case 4: try r.once(f, "metadata_json"); metadataJSON = try f.string("metadata_json")
            default: break
            }
        }
        modelID = try required(model, "model_id")
        payloadJSON = try required(payload, "payload_json")
        serverTimeMs = try required(time, "server_time_ms")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.string(2, payloadJSON)
        w.int(3, serverTimeMs)
        w.string(4, metadataJSON)
    }
}

public struct UpdateAnalyticsRequest: WireMessage {
    public var idempotencyKey: String
    public var entries: [ModelAnalytics]

    public init(idempotencyKey: String = "", entries: [ModelAnalytics]) {
        self.idempotencyKey = idempotencyKey
        self.entries = entries
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?
        var entries: [ModelAnalytics] = []
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: entries.append(try f.message("entries"))
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        self.entries = entries
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.messages(2, entries)
    }
}

public struct UpdateAnalyticsResponse: WireMessage {
    public var updated: UInt32
    public init(updated: UInt32) { self.updated = updated }
    public init(from r: inout FieldReader) throws(WireError) {
        var updated: UInt32 = 0
        while let f = try r.next() {
            if f.number == 1 { try r.once(f, "updated"); updated = try f.uint32("updated") }
        }
        self.updated = updated
    }
    public func encode(into w: inout FieldWriter) { w.uint(1, UInt64(updated)) }
}

/// GetLeaderboard (method 38): models by total PnL %, best first.
public struct GetLeaderboardRequest: WireMessage {
    /// 1–1000; absent = 100.
    public var limit: UInt32
    public init(limit: UInt32 = 100) { self.limit = limit }
    public init(from r: inout FieldReader) throws(WireError) {
        var limit: UInt32 = 100
        while let f = try r.next() {
            if f.number == 1 { try r.once(f, "limit"); limit = try f.uint32("limit") }
        }
        self.limit = limit
    }
    public func encode(into w: inout FieldWriter) { w.uint(1, UInt64(limit)) }
}

public struct LeaderboardEntry: WireMessage {
    public var modelID: String
    /// Total PnL %.
    public var score: Double

    public init(modelID: String, score: Double) {
        self.modelID = modelID
        self.score = score
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init(modelID: "", score: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); modelID = try f.string("model_id")
            case 2: try r.once(f, "score"); score = try f.double("score")
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.double(2, score)
    }
}

public struct GetLeaderboardResponse: WireMessage {
    public var entries: [LeaderboardEntry]
    public var source: ReadSource

    public init(entries: [LeaderboardEntry], source: ReadSource) {
        self.entries = entries
        self.source = source
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var entries: [LeaderboardEntry] = []
        var source: ReadSource = .postgres
        while let f = try r.next() {
            switch f.number {
            case 1: entries.append(try f.message("entries"))
            case 2: try r.once(f, "source"); source = try f.enumeration("source")
            default: break
            }
        }
        self.entries = entries
        self.source = source
    }

    public func encode(into w: inout FieldWriter) {
        w.messages(1, entries)
        w.uint(2, UInt64(source.rawValue))
    }
}
