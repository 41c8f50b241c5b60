/// Hydrate (method 4): rebuild Redis from Postgres for all models or the given ones.
public struct HydrateRequest: WireMessage {
    /// Empty = every model (and the leaderboard).
    public var models: [String]
    public var traders: [String]

    public init(models: [String] = [], traders: [String] = []) {
        self.models = models
        self.traders = traders
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var models: [String] = [], traders: [String] = []
        while let f = try r.next() {
            switch f.number {
            case 1: models.append(try f.string("models"))
            case 2: traders.append(try f.string("traders"))
            default: break
            }
        }
        self.models = models
        self.traders = traders
    }

    public func encode(into w: inout FieldWriter) {
        for m in models { w.string(1, m) }
        for t in traders { w.string(2, t) }
    }
}

public struct HydrateResponse: WireMessage {
    /// False when another instance held the hydrate lock: nothing was done here.
    public var ran: Bool
    public var models: UInt32
    public var keysWritten: UInt32
    public var tookMs: UInt64

    public init(ran: Bool, models: UInt32, keysWritten: UInt32, tookMs: UInt64) {
        self.ran = ran
        self.models = models
        self.keysWritten = keysWritten
        self.tookMs = tookMs
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init(ran: false, models: 0, keysWritten: 0, tookMs: 0)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "ran"); ran = try f.bool("ran")
            case 2: try r.once(f, "models"); models = try f.uint32("models")
            case 3: try r.once(f, "keys_written"); keysWritten = try f.uint32("keys_written")
            case 4: try r.once(f, "took_ms"); tookMs = try f.uint64("took_ms")
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        w.bool(1, ran)
        w.uint(2, UInt64(models))
        w.uint(3, UInt64(keysWritten))
        w.uint(4, tookMs)
    }
}

/// A position as the exchange reports it, supplied by the engine for a consistency check.
public struct ExchangePosition: WireMessage {
    public var modelID: String
    public var symbol: String
    public var side: PositionSide
    public var quantity: Double

    public init(modelID: String, symbol: String, side: PositionSide, quantity: Double) {
        self.modelID = modelID
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var model: String?, symbol: String?, side: PositionSide?, quantity: Double?
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "model_id"); model = try f.string("model_id")
            case 2: try r.once(f, "symbol"); symbol = try f.string("symbol")
            case 3: try r.once(f, "side"); side = try f.enumeration("side")
            case 4: try r.once(f, "quantity"); quantity = try f.double("quantity")
            default: break
            }
        }
        modelID = try required(model, "model_id")
        self.symbol = try required(symbol, "symbol")
        self.side = try required(side, "side")
        self.quantity = try required(quantity, "quantity")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, modelID)
        w.string(2, symbol)
        w.uint(3, UInt64(side.rawValue))
        w.double(4, quantity)
    }
}

/// CheckConsistency (method 5): Postgres vs Redis (and vs the exchange where supplied).
public struct CheckConsistencyRequest: WireMessage {
    /// Empty = every model.
    public var models: [String]
    /// Rewrite every differing cache key from Postgres. The database is never changed.
    public var repair: Bool
    /// Models whose exchange positions are supplied below (an empty list for a model = flat on the exchange).
    public var exchangeModels: [String]
    public var exchangePositions: [ExchangePosition]

    public init(models: [String] = [], repair: Bool = false, exchangeModels: [String] = [], exchangePositions: [ExchangePosition] = []) {
        self.models = models
        self.repair = repair
        self.exchangeModels = exchangeModels
        self.exchangePositions = exchangePositions
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init()
        while let f = try r.next() {
            switch f.number {
            case 1: models.append(try f.string("models"))
            case 2: try r.once(f, "repair"); repair = try f.bool("repair")
            case 3: exchangeModels.append(try f.string("exchange_models"))
            case 4: exchangePositions.append(try f.message("exchange_positions"))
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        for m in models { w.string(1, m) }
        w.bool(2, repair)
        for m in exchangeModels { w.string(3, m) }
        w.messages(4, exchangePositions)
    }
}

/// One difference found by a consistency check.
public struct Inconsistency: WireMessage {
    /// positions_cache, recent_trades_cache, leaderboard_cache, trader_state_cache, exchange_positions.
    public var kind: String
    /// The Redis key, or `model|SYMBOL` for exchange differences.
    public var key: String
    /// What Postgres holds (JSON or text; empty when absent).
    public var databaseValue: String
    /// What Redis (or the exchange) holds (empty when absent).
    public var otherValue: String
    public var repaired: Bool

    public init(kind: String, key: String, databaseValue: String, otherValue: String, repaired: Bool) {
        self.kind = kind
        self.key = key
        self.databaseValue = databaseValue
        self.otherValue = otherValue
        self.repaired = repaired
    }

    public init(from r: inout FieldReader) throws(WireError) {
        self.init(kind: "", key: "", databaseValue: "", otherValue: "", repaired: false)
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "kind"); kind = try f.string("kind")
            case 2: try r.once(f, "key"); key = try f.string("key")
            case 3: try r.once(f, "database_value"); databaseValue = try f.string("database_value")
            case 4: try r.once(f, "other_value"); otherValue = try f.string("other_value")
            case 5: try r.once(f, "repaired"); repaired = try f.bool("repaired")
            default: break
            }
        }
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, kind)
        w.string(2, key)
        w.string(3, databaseValue)
        w.string(4, otherValue)
        w.bool(5, repaired)
    }
}

public struct CheckConsistencyResponse: WireMessage {
    public var differences: [Inconsistency]
    /// Keys (and exchange positions) compared.
    public var checked: UInt32

    public init(differences: [Inconsistency], checked: UInt32) {
        self.differences = differences
        self.checked = checked
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var d: [Inconsistency] = []
        var checked: UInt32 = 0
        while let f = try r.next() {
            switch f.number {
            case 1: d.append(try f.message("differences"))
            case 2: try r.once(f, "checked"); checked = try f.uint32("checked")
            default: break
            }
        }
        differences = d
        self.checked = checked
    }

    public func encode(into w: inout FieldWriter) {
        w.messages(1, differences)
        w.uint(2, UInt64(checked))
    }
}

/// Stats (method 3): the service's metrics in the Prometheus text exposition format.
public struct StatsRequest: WireMessage {
    public init() {}
    public init(from r: inout FieldReader) throws(WireError) { while try r.next() != nil {} }
    public func encode(into w: inout FieldWriter) {}
}

public struct StatsResponse: WireMessage {
    public var prometheusText: String

    public init(prometheusText: String) { self.prometheusText = prometheusText }

    public init(from r: inout FieldReader) throws(WireError) {
        var text = ""
        while let f = try r.next() {
            if f.number == 1 { try r.once(f, "prometheus_text"); text = try f.string("prometheus_text") }
        }
        prometheusText = text
    }

    public func encode(into w: inout FieldWriter) { w.string(1, prometheusText) }
}
