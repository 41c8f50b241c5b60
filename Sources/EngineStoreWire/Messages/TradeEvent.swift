/// PublishTradeEvent (method 18): a trade event seen by the engine (a fill, a liquidation, a funding
/// payment). Stored once per `trade_id`; a repeat is acknowledged as a duplicate and never re-published.
public struct PublishTradeEventRequest: WireMessage {
    public var idempotencyKey: String
    /// The exchange's trade id: the deduplication key.
    public var tradeID: String
    public var modelID: String
    public var symbol: String
    /// "fill", "liquidation", "funding", … (1–32 bytes).
    public var kind: String
    public var side: PositionSide?
    public var price: Double?
    public var size: Double?
    public var fee: Double?
    public var timestampMs: Int64
    /// Any extra JSON object to keep with the event.
    public var payloadJSON: String?

    public init(idempotencyKey: String = "", tradeID: String, modelID: String, symbol: String, kind: String,
                side: PositionSide? = nil, price: Double? = nil, size: Double? = nil, fee: Double? = nil,
                timestampMs: Int64, payloadJSON: String? = nil) {
        self.idempotencyKey = idempotencyKey
        self.tradeID = tradeID
        self.modelID = modelID
        self.symbol = symbol
        self.kind = kind
        self.side = side
        self.price = price
        self.size = size
        self.fee = fee
        self.timestampMs = timestampMs
        self.payloadJSON = payloadJSON
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?, trade: String?, model: String?, symbol: String?, kind: String?, ts: Int64?
        self.init(tradeID: "", modelID: "", symbol: "", kind: "", timestampMs: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: try r.once(f, "trade_id"); trade = try f.string("trade_id")
            case 3: try r.once(f, "model_id"); model = try f.string("model_id")
            case 4: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 5: try r.once(f, "kind"); kind = try f.string("kind")
            case 6: try r.once(f, "side"); side = try f.enumeration("side")
            case 7: try r.once(f, "price"); price = try f.double("price")
            case 8: try r.once(f, "size"); size = try f.double("size")
            case 9: try r.once(f, "fee"); fee = try f.double("fee")
            case 10: try r.once(f, "timestamp_ms"); ts = try f.int64("timestamp_ms")
            case 11: try r.once(f, "payload_json"); payloadJSON = try f.string("payload_json")
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        tradeID = try required(trade, "trade_id")
        modelID = try required(model, "model_id")
        self.symbol = try required(symbol, "symbol")
        self.kind = try required(kind, "kind")
        timestampMs = try required(ts, "timestamp_ms")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.string(2, tradeID)
        w.string(3, modelID)
        w.string(4, symbol)
        w.string(5, kind)
        w.uint(6, side.map { UInt64($0.rawValue) })
        w.double(7, price)
        w.double(8, size)
        w.double(9, fee)
        w.int(10, timestampMs)
        w.string(11, payloadJSON)
    }
}

public struct PublishTradeEventResponse: WireMessage {
    /// True when this trade id was already stored: nothing new was written or published.
    public var duplicate: Bool
    /// The id carried in the stream entry (`event_id`), equal to the trade id.
    public var eventID: String

    public init(duplicate: Bool, eventID: String) {
        self.duplicate = duplicate
        self.eventID = eventID
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var duplicate = false
        var id = ""
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "duplicate"); duplicate = try f.bool("duplicate")
            case 2: try r.once(f, "event_id"); id = try f.string("event_id")
            default: break
            }
        }
        self.duplicate = duplicate
        self.eventID = id
    }

    public func encode(into w: inout FieldWriter) {
        w.bool(1, duplicate)
        w.string(2, eventID)
    }
}
