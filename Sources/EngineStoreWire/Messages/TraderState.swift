/// SaveTraderState (method 35) writes it; GetTraderState (method 36) reads it back.
public struct TraderState: WireMessage {
    public var traderID: String
    public var exchangeProvider: String?
    public var marketProvider: String?
    public var allocationPct: Double?
    /// JSON object for `cooldown`.
    public var cooldownJSON: String?
    /// JSON object for `risk_guards`.
    public var riskGuardsJSON: String?
    public var lastDecisionAtMs: Int64?
    public var pauseUntilMs: Int64?
    /// Set by the server on reads and in replies.
    public var updatedAtMs: Int64?

    public init(traderID: String, exchangeProvider: String? = nil, marketProvider: String? = nil, allocationPct: Double? = nil,
                cooldownJSON: String? = nil, riskGuardsJSON: String? = nil, lastDecisionAtMs: Int64? = nil,
                pauseUntilMs: Int64? = nil, updatedAtMs: Int64? = nil) {
        self.traderID = traderID
        self.exchangeProvider = exchangeProvider
        self.marketProvider = marketProvider
        self.allocationPct = allocationPct
        self.cooldownJSON = cooldownJSON
        self.riskGuardsJSON = riskGuardsJSON
        self.lastDecisionAtMs = lastDecisionAtMs
        self.pauseUntilMs = pauseUntilMs
        self.updatedAtMs = updatedAtMs
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var id: String?
        self.init(traderID: "")
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "trader_id"); id = try f.string("trader_id")
            case 2: try r.once(f, "exchange_provider"); exchangeProvider = try f.string("exchange_provider")
            case 3: try r.once(f, "market_provider"); marketProvider = try f.string("market_provider")
            case 4: try r.once(f, "allocation_pct"); allocationPct = try f.double("allocation_pct")
            case 5: try r.once(f, "cooldown_json"); cooldownJSON = try f.string("cooldown_json")
            case 6: try r.once(f, "risk_guards_json"); riskGuardsJSON = try f.string("risk_guards_json")
            case 7: try r.once(f, "last_decision_at_ms"); lastDecisionAtMs = try f.int64("last_decision_at_ms")
            case 8: try r.once(f, "pause_until_ms"); pauseUntilMs = try f.int64("pause_until_ms")
            case 9: try r.once(f, "updated_at_ms"); updatedAtMs = try f.int64("updated_at_ms")
            default: break
            }
        }
        traderID = try required(id, "trader_id")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, traderID)
        w.string(2, exchangeProvider)
        w.string(3, marketProvider)
        w.double(4, allocationPct)
        w.string(5, cooldownJSON)
        w.string(6, riskGuardsJSON)
        w.int(7, lastDecisionAtMs)
        w.int(8, pauseUntilMs)
        w.int(9, updatedAtMs)
    }
}

public struct SaveTraderStateRequest: WireMessage {
    public var idempotencyKey: String
    /// Fields absent here keep their stored value; a new trader needs exchange_provider and market_provider.
    public var state: TraderState

    public init(idempotencyKey: String = "", state: TraderState) {
        self.idempotencyKey = idempotencyKey
        self.state = state
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var key: String?, state: TraderState?
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "idempotency_key"); key = try f.string("idempotency_key")
            case 2: try r.once(f, "state"); state = try f.message("state")
            default: break
            }
        }
        idempotencyKey = try required(key, "idempotency_key")
        self.state = try required(state, "state")
    }

    public func encode(into w: inout FieldWriter) {
        w.string(1, idempotencyKey)
        w.message(2, state)
    }
}

public struct GetTraderStateRequest: WireMessage {
    public var traderID: String
    public init(traderID: String) { self.traderID = traderID }
    public init(from r: inout FieldReader) throws(WireError) {
        var id: String?
        while let f = try r.next() {
            if f.number == 1 { try r.once(f, "trader_id"); id = try f.string("trader_id") }
        }
        traderID = try required(id, "trader_id")
    }
    public func encode(into w: inout FieldWriter) { w.string(1, traderID) }
}

/// Reply of SaveTraderState (the stored state) and GetTraderState.
public struct TraderStateResponse: WireMessage {
    public var state: TraderState
    public var source: ReadSource

    public init(state: TraderState, source: ReadSource) {
        self.state = state
        self.source = source
    }

    public init(from r: inout FieldReader) throws(WireError) {
        var state: TraderState?
        var source: ReadSource = .postgres
        while let f = try r.next() {
            switch f.number {
            case 1: try r.once(f, "state"); state = try f.message("state")
            case 2: try r.once(f, "source"); source = try f.enumeration("source")
            default: break
            }
        }
        self.state = try required(state, "state")
        self.source = source
    }

    public func encode(into w: inout FieldWriter) {
        w.message(1, state)
        w.uint(2, UInt64(source.rawValue))
    }
}
