/// ClosePosition (method 17): full or partial close of the open position for (model, symbol).
/// In one transaction the position row is closed (or its quantity reduced) and a `trades` row inserted.
public struct ClosePositionRequest: WireMessage {
    public var idempotencyKey: String
    public var modelID: String
    public var symbol: String
    public var exitPrice: Double
    /// Size closed; absent = the whole open quantity.
    public var exitSize: Double?
    public var exitTimeMs: Int64
    public var exitOID: Int64?
    /// Exchange fill (trade) id of the exit.
    public var exitTID: Int64?
    /// Exit commission in dollars.
    public var exitCommission: Double?
    public var exitCrossed: Bool?
    /// JSON text for `trades.exit_liquidation`.
    public var exitLiquidationJSON: String?
    /// The exchange's trade id, stored in `trades.trade_id`.
    public var tradeID: String?
    /// Free text stored in `trades.trade_type` (default "close_long"/"close_short").
    public var tradeType: String?

    public init(idempotencyKey: String = "", modelID: String, symbol: String, exitPrice: Double, exitSize: Double? = nil,
                exitTimeMs: Int64, exitOID: Int64? = nil, exitTID: Int64? = nil, exitCommission: Double? = nil,
                exitCrossed: Bool? = nil, exitLiquidationJSON: String? = nil, tradeID: String? = nil,
                tradeType: String? = nil) {
        self.idempotencyKey = idempotencyKey
        self.modelID = modelID
        self.symbol = symbol
        self.exitPrice = exitPrice
        self.exitSize = exitSize
        self.exitTimeMs = exitTimeMs
        self.exitOID = exitOID
        self.exitTID = exitTID
        self.exitCommission = exitCommission
        self.exitCrossed = exitCrossed
        self.exitLiquidationJSON = exitLiquidationJSON
        self.tradeID = tradeID
        self.tradeType = tradeType
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?, model: String?, symbol: String?, price: Double?, time: Int64?
        self.init(modelID: "", symbol: "", exitPrice: 0, exitTimeMs: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: try r.once(f, "model_id"); model = try f.string("model_id")
            case 3: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 4: try r.once(f, "exit_price"); price = try f.double("exit_price")
            case 5: try r.once(f, "exit_size"); exitSize = try f.double("exit_size")
            case 6: try r.once(f, "exit_time_ms"); time = try f.int64("exit_time_ms")
            case 7: try r.once(f, "exit_oid"); exitOID = try f.int64("exit_oid")
            case 8: try r.once(f, "exit_tid"); exitTID = try f.int64("exit_tid")
            case 9: try r.once(f, "exit_commission"); exitCommission = try f.double("exit_commission")
            case 10: try r.once(f, "exit_crossed"); exitCrossed = try f.bool("exit_crossed")
            case 11: try r.once(f, "exit_liquidation_json"); exitLiquidationJSON = try f.string("exit_liquidation_json")
            case 12: try r.once(f, "trade_id"); tradeID = try f.string("trade_id")
            case 13: try r.once(f, "trade_type"); tradeType = try f.string("trade_type")
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        modelID = try required(model, "model_id")
        self.symbol = try required(symbol, "symbol")
        exitPrice = try required(price, "exit_price")
        exitTimeMs = try required(time, "exit_time_ms")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.string(2, modelID)
        w.string(3, symbol)
        w.double(4, exitPrice)
        w.double(5, exitSize)
        w.int(6, exitTimeMs)
        w.int(7, exitOID)
        w.int(8, exitTID)
        w.double(9, exitCommission)
        w.bool(10, exitCrossed)
        w.string(11, exitLiquidationJSON)
        w.string(12, tradeID)
        w.string(13, tradeType)
    }
}

public struct ClosePositionResponse: WireMessage {
    /// Id of the inserted `trades` row (also the stream event id).
    public var tradeRowID: String
    public var positionID: String
    /// True when the position is now closed; false after a partial close.
    public var fullyClosed: Bool
    public var closedSize: Double
    public var remainingSize: Double
    public var realizedGrossPnl: Double
    public var realizedNetPnl: Double
    public var totalCommission: Double

    public init(tradeRowID: String, positionID: String, fullyClosed: Bool, closedSize: Double, remainingSize: Double,
                realizedGrossPnl: Double, realizedNetPnl: Double, totalCommission: Double) {
        self.tradeRowID = tradeRowID
        self.positionID = positionID
        self.fullyClosed = fullyClosed
        self.closedSize = closedSize
        self.remainingSize = remainingSize
        self.realizedGrossPnl = realizedGrossPnl
        self.realizedNetPnl = realizedNetPnl
        self.totalCommission = totalCommission
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var trade: String?
        self.init(tradeRowID: "", positionID: "", fullyClosed: false, closedSize: 0, remainingSize: 0,
                  realizedGrossPnl: 0, realizedNetPnl: 0, totalCommission: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "trade_row_id"); trade = try f.string("trade_row_id")
            case 2: try r.once(f, "position_id"); positionID = try f.string("position_id")
            case 3: try r.once(f, "fully_closed"); fullyClosed = try f.bool("fully_closed")
            case 4: try r.once(f, "closed_size"); closedSize = try f.double("closed_size")
            case 5: try r.once(f, "remaining_size"); remainingSize = try f.double("remaining_size")
            case 6: try r.once(f, "realized_gross_pnl"); realizedGrossPnl = try f.double("realized_gross_pnl")
            case 7: try r.once(f, "realized_net_pnl"); realizedNetPnl = try f.double("realized_net_pnl")
            case 8: try r.once(f, "total_commission"); totalCommission = try f.double("total_commission")
            default: break
            }
        }
        tradeRowID = try required(trade, "trade_row_id")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, tradeRowID)
        w.string(2, positionID)
        w.bool(3, fullyClosed)
        w.double(4, closedSize)
        w.double(5, remainingSize)
        w.double(6, realizedGrossPnl)
        w.double(7, realizedNetPnl)
        w.double(8, totalCommission)
    }
}
