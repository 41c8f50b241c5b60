/// Where a read was answered from.
public enum ReadSource: UInt8, Sendable, CustomStringConvertible {
    case cache = 1
    case postgres = 2
    public var description: String { self == .cache ? "cache" : "postgres" }
}

/// GetOpenPositions (method 19).
public struct GetOpenPositionsRequest: WireMessage {
    public var modelID: String

    public init(modelID: String) { self.modelID = modelID }

    public init(from r: inout FieldReader) throws(WireError) {
        var model: String?
        while let f = try r.next() {
            if f.number == 1 { try r.once(f, "model_id"); model = try f.string("model_id") }
        }
        modelID = try required(model, "model_id")
    }

    public func encode(into w: inout FieldWriter) { w.string(1, modelID) }
}

/// An open position as the cache holds it (the position document's fields, proto-spec §10.12).
public struct PositionSnapshot: WireMessage {
    public var symbol: String
    public var side: PositionSide
    public var quantity: Double
    public var entryPrice: Double
    public var leverage: Double?
    public var confidence: Double?
    public var riskUSD: Double?
    public var updatedAtMs: Int64
    public var exchange: String

    public init(symbol: String, side: PositionSide, quantity: Double, entryPrice: Double, leverage: Double?,
                confidence: Double?, riskUSD: Double?, updatedAtMs: Int64, exchange: String) {
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.entryPrice = entryPrice
        self.leverage = leverage
        self.confidence = confidence
        self.riskUSD = riskUSD
        self.updatedAtMs = updatedAtMs
        self.exchange = exchange
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var symbol: String?, side: PositionSide?
        self.init(symbol: "", side: .long, quantity: 0, entryPrice: 0, leverage: nil, confidence: nil, riskUSD: nil,
                  updatedAtMs: 0, exchange: "")
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 2: try r.once(f, "side"); side = try f.enumeration("side")
            case 3: try r.once(f, "quantity"); quantity = try f.double("quantity")
            case 4: try r.once(f, "entry_price"); entryPrice = try f.double("entry_price")
            case 5: try r.once(f, "leverage"); leverage = try f.double("leverage")
            case 6: try r.once(f, "confidence"); confidence = try f.double("confidence")
            case 7: try r.once(f, "risk_usd"); riskUSD = try f.double("risk_usd")
            case 8: try r.once(f, "updated_at_ms"); updatedAtMs = try f.int64("updated_at_ms")
            case 9: try r.once(f, "exchange"); exchange = try f.string("exchange")
            default: break
            }
        }
        self.symbol = try required(symbol, "symbol")
        self.side = try required(side, "side")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, symbol)
        w.uint(2, UInt64(side.rawValue))
        w.double(3, quantity)
        w.double(4, entryPrice)
        w.double(5, leverage)
        w.double(6, confidence)
        w.double(7, riskUSD)
        w.int(8, updatedAtMs)
        w.string(9, exchange)
    }
}

public struct GetOpenPositionsResponse: WireMessage {
    public var positions: [PositionSnapshot]
    public var source: ReadSource

    public init(positions: [PositionSnapshot], source: ReadSource) {
        self.positions = positions
        self.source = source
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var positions: [PositionSnapshot] = []
        var source: ReadSource = .postgres
        while let f = try r.next() {
            switch f.number {
            case 1: positions.append(try f.message("positions"))
            case 2: try r.once(f, "source"); source = try f.enumeration("source")
            default: break
            }
        }
        self.positions = positions
        self.source = source
    }

    public func encode(into w: inout FieldWriter) {
        w.messages(1, positions)
        w.uint(2, UInt64(source.rawValue))
    }
}

/// GetRecentTrades (method 20): newest first.
public struct GetRecentTradesRequest: WireMessage {
    public var modelID: String
    /// 1–100; absent = 20.
    public var limit: UInt32

    public init(modelID: String, limit: UInt32 = 20) {
        self.modelID = modelID
        self.limit = limit
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var model: String?
        var limit: UInt32 = 20
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); model = try f.string("model_id")
            case 2: try r.once(f, "limit"); limit = try f.uint32("limit")
            default: break
            }
        }
        modelID = try required(model, "model_id")
        self.limit = limit
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.uint(2, UInt64(limit))
    }
}

/// A closed trade as the cache holds it (the trade document's fields, proto-spec §10.12).
public struct TradeSnapshot: WireMessage {
    public var modelID: String
    public var symbol: String
    public var side: PositionSide
    public var quantity: Double
    public var entryPrice: Double
    public var exitPrice: Double
    /// Realized net PnL.
    public var realizedPnl: Double
    public var confidence: Double?
    public var closedAtMs: Int64
    public var exchange: String
    public var entryTimeMs: Int64
    public var leverage: Double?
    /// Notional at entry: quantity × entry price.
    public var positionSize: Double

    public init(modelID: String, symbol: String, side: PositionSide, quantity: Double, entryPrice: Double,
                exitPrice: Double, realizedPnl: Double, confidence: Double?, closedAtMs: Int64, exchange: String,
                entryTimeMs: Int64, leverage: Double?, positionSize: Double) {
        self.modelID = modelID
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.entryPrice = entryPrice
        self.exitPrice = exitPrice
        self.realizedPnl = realizedPnl
        self.confidence = confidence
        self.closedAtMs = closedAtMs
        self.exchange = exchange
        self.entryTimeMs = entryTimeMs
        self.leverage = leverage
        self.positionSize = positionSize
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var symbol: String?, side: PositionSide?
        self.init(modelID: "", symbol: "", side: .long, quantity: 0, entryPrice: 0, exitPrice: 0, realizedPnl: 0,
                  confidence: nil, closedAtMs: 0, exchange: "", entryTimeMs: 0, leverage: nil, positionSize: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); modelID = try f.string("model_id")
            case 2: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 3: try r.once(f, "side"); side = try f.enumeration("side")
            case 4: try r.once(f, "quantity"); quantity = try f.double("quantity")
            case 5: try r.once(f, "entry_price"); entryPrice = try f.double("entry_price")
            case 6: try r.once(f, "exit_price"); exitPrice = try f.double("exit_price")
            case 7: try r.once(f, "realized_pnl"); realizedPnl = try f.double("realized_pnl")
            case 8: try r.once(f, "confidence"); confidence = try f.double("confidence")
            case 9: try r.once(f, "closed_at_ms"); closedAtMs = try f.int64("closed_at_ms")
            case 10: try r.once(f, "exchange"); exchange = try f.string("exchange")
            case 11: try r.once(f, "entry_time_ms"); entryTimeMs = try f.int64("entry_time_ms")
            case 12: try r.once(f, "leverage"); leverage = try f.double("leverage")
            case 13: try r.once(f, "position_size"); positionSize = try f.double("position_size")
            default: break
            }
        }
        self.symbol = try required(symbol, "symbol")
        self.side = try required(side, "side")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.string(2, symbol)
        w.uint(3, UInt64(side.rawValue))
        w.double(4, quantity)
        w.double(5, entryPrice)
        w.double(6, exitPrice)
        w.double(7, realizedPnl)
        w.double(8, confidence)
        w.int(9, closedAtMs)
        w.string(10, exchange)
        w.int(11, entryTimeMs)
        w.double(12, leverage)
        w.double(13, positionSize)
    }
}

public struct GetRecentTradesResponse: WireMessage {
    public var trades: [TradeSnapshot]
    public var source: ReadSource

    public init(trades: [TradeSnapshot], source: ReadSource) {
        self.trades = trades
        self.source = source
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var trades: [TradeSnapshot] = []
        var source: ReadSource = .postgres
        while let f = try r.next() {
            switch f.number {
            case 1: trades.append(try f.message("trades"))
            case 2: try r.once(f, "source"); source = try f.enumeration("source")
            default: break
            }
        }
        self.trades = trades
        self.source = source
    }

    public func encode(into w: inout FieldWriter) {
        w.messages(1, trades)
        w.uint(2, UInt64(source.rawValue))
    }
}
