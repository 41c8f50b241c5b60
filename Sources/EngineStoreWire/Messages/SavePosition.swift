public enum PositionSide: UInt8, Sendable, CustomStringConvertible {
    case long = 1
    case short = 2

    /// The text stored in `positions.side` and in cache JSON.
    public var description: String { self == .long ? "long" : "short" }
}

/// SavePosition (method 16): open a position, or update the open one for (model, symbol).
/// Only `idempotency_key`, `model_id` and `symbol` are always required; an open additionally needs
/// exchange_provider, side, quantity, entry_price and entry_time_ms. On an update only the fields sent change.
public struct SavePositionRequest: WireMessage {
    public var idempotencyKey: String
    public var modelID: String
    public var symbol: String
    public var exchangeProvider: String?
    public var side: PositionSide?
    public var quantity: Double?
    public var entryPrice: Double?
    public var entryTimeMs: Int64?
    public var leverage: Double?
    public var confidence: Double?
    public var riskUSD: Double?
    public var margin: Double?
    public var entryOID: Int64?
    public var tpOID: Int64?
    public var slOID: Int64?
    public var waitForFill: Bool?
    /// JSON text for `exit_plan` (JSONB).
    public var exitPlanJSON: String?
    /// JSON text for `index_col` (JSONB).
    public var indexJSON: String?
    public var currentPrice: Double?
    public var unrealizedPnl: Double?
    public var liquidationPrice: Double?
    public var commission: Double?
    public var slippage: Double?

    public init(idempotencyKey: String = "", modelID: String, symbol: String, exchangeProvider: String? = nil,
                side: PositionSide? = nil, quantity: Double? = nil, entryPrice: Double? = nil,
                entryTimeMs: Int64? = nil, leverage: Double? = nil, confidence: Double? = nil,
                riskUSD: Double? = nil, margin: Double? = nil, entryOID: Int64? = nil, tpOID: Int64? = nil,
                slOID: Int64? = nil, waitForFill: Bool? = nil, exitPlanJSON: String? = nil,
                indexJSON: String? = nil, currentPrice: Double? = nil, unrealizedPnl: Double? = nil,
                liquidationPrice: Double? = nil, commission: Double? = nil, slippage: Double? = nil) {
        self.idempotencyKey = idempotencyKey
        self.modelID = modelID
        self.symbol = symbol
        self.exchangeProvider = exchangeProvider
        self.side = side
        self.quantity = quantity
        self.entryPrice = entryPrice
        self.entryTimeMs = entryTimeMs
        self.leverage = leverage
        self.confidence = confidence
        self.riskUSD = riskUSD
        self.margin = margin
        self.entryOID = entryOID
        self.tpOID = tpOID
        self.slOID = slOID
        self.waitForFill = waitForFill
        self.exitPlanJSON = exitPlanJSON
        self.indexJSON = indexJSON
        self.currentPrice = currentPrice
        self.unrealizedPnl = unrealizedPnl
        self.liquidationPrice = liquidationPrice
        self.commission = commission
        self.slippage = slippage
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?
        var model: String?
        var symbol: String?
        self.init(modelID: "", symbol: "")
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: try r.once(f, "model_id"); model = try f.string("model_id")
            case 3: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 4: try r.once(f, "exchange_provider"); exchangeProvider = try f.string("exchange_provider")
            case 5: try r.once(f, "side"); side = try f.enumeration("side")
            case 6: try r.once(f, "quantity"); quantity = try f.double("quantity")
            case 7: try r.once(f, "entry_price"); entryPrice = try f.double("entry_price")
            case 8: try r.once(f, "entry_time_ms"); entryTimeMs = try f.int64("entry_time_ms")
            case 9: try r.once(f, "leverage"); leverage = try f.double("leverage")
            case 10: try r.once(f, "confidence"); confidence = try f.double("confidence")
            case 11: try r.once(f, "risk_usd"); riskUSD = try f.double("risk_usd")
            case 12: try r.once(f, "margin"); margin = try f.double("margin")
            case 13: try r.once(f, "entry_oid"); entryOID = try f.int64("entry_oid")
            case 14: try r.once(f, "tp_oid"); tpOID = try f.int64("tp_oid")
            case 15: try r.once(f, "sl_oid"); slOID = try f.int64("sl_oid")
            case 16: try r.once(f, "wait_for_fill"); waitForFill = try f.bool("wait_for_fill")
            case 17: try r.once(f, "exit_plan_json"); exitPlanJSON = try f.string("exit_plan_json")
            case 18: try r.once(f, "index_json"); indexJSON = try f.string("index_json")
            case 19: try r.once(f, "current_price"); currentPrice = try f.double("current_price")
            case 20: try r.once(f, "unrealized_pnl"); unrealizedPnl = try f.double("unrealized_pnl")
            case 21: try r.once(f, "liquidation_price"); liquidationPrice = try f.double("liquidation_price")
            case 22: try r.once(f, "commission"); commission = try f.double("commission")
            case 23: try r.once(f, "slippage"); slippage = try f.double("slippage")
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        modelID = try required(model, "model_id")
        self.symbol = try required(symbol, "symbol")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.string(2, modelID)
        w.string(3, symbol)
        w.string(4, exchangeProvider)
        w.uint(5, side.map { UInt64($0.rawValue) })
        w.double(6, quantity)
        w.double(7, entryPrice)
        w.int(8, entryTimeMs)
        w.double(9, leverage)
        w.double(10, confidence)
        w.double(11, riskUSD)
        w.double(12, margin)
        w.int(13, entryOID)
        w.int(14, tpOID)
        w.int(15, slOID)
        w.bool(16, waitForFill)
        w.string(17, exitPlanJSON)
        w.string(18, indexJSON)
        w.double(19, currentPrice)
        w.double(20, unrealizedPnl)
        w.double(21, liquidationPrice)
        w.double(22, commission)
        w.double(23, slippage)
    }
}

public struct SavePositionResponse: WireMessage {
    /// The id of the row for this lifecycle of the position.
    public var positionID: String
    /// True when this call opened the position, false when it updated an open one.
    public var opened: Bool
    /// Server time of the commit, ms since the epoch.
    public var updatedAtMs: Int64

    public init(positionID: String, opened: Bool, updatedAtMs: Int64) {
        self.positionID = positionID
        self.opened = opened
        self.updatedAtMs = updatedAtMs
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var id: String?
        var opened = false
        var at: Int64 = 0
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "position_id"); id = try f.string("position_id")
            case 2: try r.once(f, "opened"); opened = try f.bool("opened")
            case 3: try r.once(f, "updated_at_ms"); at = try f.int64("updated_at_ms")
            default: break
            }
        }
        positionID = try required(id, "position_id")
        self.opened = opened
        updatedAtMs = at
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, positionID)
        w.bool(2, opened)
        w.int(3, updatedAtMs)
    }
}
