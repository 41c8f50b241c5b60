import EngineStoreWire
import LibPQ

/// Trader state: SaveTraderState upserts `trader_state` (only the fields sent change) and sets
/// `nof0:trader:<id>:state`; GetTraderState reads that key, falling back to Postgres, so an engine
/// restores its traders after its own restart.
struct TraderStateRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.saveTraderState, .getTraderState] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        let skew = context.configuration.maxClockSkewMs
        let ttl = context.configuration.ttl.medium
        switch method {
        case .saveTraderState:
            let r = try SaveTraderStateRequest.decodeWrite(payload)
            let s = r.state
            try Validate.keyPart(s.traderID, "state.trader_id")
            if let p = s.exchangeProvider { try Validate.identifier(p, "state.exchange_provider", maxBytes: 64) }
            if let p = s.marketProvider { try Validate.identifier(p, "state.market_provider", maxBytes: 64) }
            if let a = s.allocationPct {
                guard a.isFinite, a >= 0, a <= 100 else { throw .invalid("state.allocation_pct", "must be 0 to 100") }
            }
            try Validate.jsonObject(s.cooldownJSON, "state.cooldown_json")
            try Validate.jsonObject(s.riskGuardsJSON, "state.risk_guards_json")
            try Validate.timestampMs(s.lastDecisionAtMs, "state.last_decision_at_ms", maxSkewMs: skew)
            if let p = s.pauseUntilMs, p < Validate.earliestMs || p > epochMillis() + 366 * 86_400_000 {
                throw .invalid("state.pause_until_ms", "\(p) is not a plausible epoch time in milliseconds")
            }
            context.submitWrite(r, method, payload: payload,
                body: SaveTraderStateBody(state: s, keys: context.keys, ttl: ttl),
                reply: reply)
        case .getTraderState:
            let r = try GetTraderStateRequest.decodeRequest(payload)
            try Validate.keyPart(r.traderID, "trader_id")
            let (keys, key) = (context.keys, context.keys.traderState(trader: r.traderID))
            CachedRead(context: context).run(reply, family: "trader_state", command: ["GET", key], fromCache: { cached in
                cached.text.flatMap(TraderStateStore.state(document:))
                    .map { TraderStateResponse(state: $0, source: .cache).encodedPayload() }
            }, fromPostgres: { session in
                guard let row = try session.first(TraderStateStore.Select(trader: r.traderID)) else {
                    throw ServiceError(.notFound, "no state stored for trader \(r.traderID)")
                }
                return JobOutcome(reply: TraderStateResponse(state: row.state, source: .postgres).encodedPayload(),
                                  cacheMutations: [TraderStateStore.mutation(row, keys: keys, ttl: ttl)])
            })
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
        }
    }
}

struct SaveTraderStateBody: WriteBody {
    let state: TraderState
    let keys: CacheKeys
    let ttl: Int

    var lockKeys: [String] { [LockOrder.traderState(state.traderID)] }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let s = state
        var row = try session.first(TraderStateStore.Update(state: s))
        if row == nil {
            if s.exchangeProvider == nil { throw ServiceError.invalid("state.exchange_provider", "required for a new trader") }
            if s.marketProvider == nil { throw ServiceError.invalid("state.market_provider", "required for a new trader") }
            row = try session.first(TraderStateStore.Insert(state: s))
            if row == nil { row = try session.first(TraderStateStore.Update(state: s)) }
        }
        guard let row else { throw ServiceError(.internalError, "trader state neither updated nor inserted") }
        return JobOutcome(reply: TraderStateResponse(state: row.state, source: .postgres).encodedPayload(),
                          cacheMutations: [TraderStateStore.mutation(row, keys: keys, ttl: ttl)],
                          outboxIDs: try Outbox.record(session, [.traderState(trader: s.traderID)]))
    }
}
