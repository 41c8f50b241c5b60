import EngineStoreWire
import Foundation
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
            let r = try SaveTraderStateRequest.decodeRequest(payload)
            try Validate.identifier(r.idempotencyKey, "idempotency_key")
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
            context.postgres.submit(IdempotentWrite(
                key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: SaveTraderStateBody(state: s, key: context.keys.traderState(trader: s.traderID),
                                         versionKey: context.keys.version(of: context.keys.traderState(trader: s.traderID)), ttl: ttl),
                reply: reply))
        case .getTraderState:
            let r = try GetTraderStateRequest.decodeRequest(payload)
            try Validate.keyPart(r.traderID, "trader_id")
            let key = context.keys.traderState(trader: r.traderID)
            CachedRead(context: context).run(reply, family: "trader_state", command: ["GET", key], fromCache: { cached in
                guard let o = cachedObject(cached), let state = o["state"] as? [String: Any],
                      let id = state.string("trader_id") else { return nil }
                let t = TraderState(traderID: id, exchangeProvider: state.string("exchange_provider"),
                                    marketProvider: state.string("market_provider"), allocationPct: state.double("allocation_pct"),
                                    cooldownJSON: state.jsonText("cooldown"), riskGuardsJSON: state.jsonText("risk_guards"),
                                    lastDecisionAtMs: state.int64("last_decision_at_ms"), pauseUntilMs: state.int64("pause_until_ms"),
                                    updatedAtMs: state.int64("updated_at_ms"))
                return TraderStateResponse(state: t, source: .cache).encodedPayload()
            }, fromPostgres: { session in
                let row = try session.run(selectState, [r.traderID])
                guard row.rowCount == 1 else { throw ServiceError(.notFound, "no state stored for trader \(r.traderID)") }
                let t = traderStateRow(row)
                return JobOutcome(reply: TraderStateResponse(state: t, source: .postgres).encodedPayload(),
                                  cacheMutations: [traderStateMutation(row, key: key, versionKey: context.keys.version(of: key), ttl: ttl)])
            })
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
        }
    }
}

private let stateColumns = """
    trader_id, exchange_provider, market_provider, allocation_pct, cooldown::text, risk_guards::text,
    (extract(epoch FROM last_decision_at) * 1000)::bigint, (extract(epoch FROM pause_until) * 1000)::bigint,
    (extract(epoch FROM updated_at) * 1000)::bigint, cache_version
    """

let selectState = Statement(name: "trader_state_select", sql: "SELECT \(stateColumns) FROM trader_state WHERE trader_id = $1")

private let updateState = Statement(name: "trader_state_update", sql: """
    UPDATE trader_state SET
        exchange_provider = COALESCE($2, exchange_provider),
        market_provider = COALESCE($3, market_provider),
        allocation_pct = COALESCE($4::float8, allocation_pct),
        cooldown = COALESCE($5::jsonb, cooldown),
        risk_guards = COALESCE($6::jsonb, risk_guards),
        last_decision_at = COALESCE(to_timestamp($7::float8 / 1000), last_decision_at),
        pause_until = COALESCE(to_timestamp($8::float8 / 1000), pause_until),
        updated_at = now(),
        cache_version = nextval('engine_store_cache_version')
    WHERE trader_id = $1
    RETURNING \(stateColumns)
    """)

private let insertState = Statement(name: "trader_state_insert", sql: """
    INSERT INTO trader_state (trader_id, exchange_provider, market_provider, allocation_pct, cooldown, risk_guards,
                              last_decision_at, pause_until)
    VALUES ($1, $2, $3, $4, COALESCE($5::jsonb, '{}'), COALESCE($6::jsonb, '{}'),
            to_timestamp($7::float8 / 1000), to_timestamp($8::float8 / 1000))
    ON CONFLICT (trader_id) DO NOTHING
    RETURNING \(stateColumns)
    """)

/// The cached document of a `stateColumns` row, versioned by its `cache_version`.
func traderStateMutation(_ r: PGResult, key: String, versionKey: String, ttl: Int) -> CacheMutation {
    .versionedSet(key: key, versionKey: versionKey, value: traderStateJSON(traderStateRow(r)),
                  version: CacheVersion.of(r.int(0, 9) ?? 0), ttlSeconds: ttl)
}

func traderStateRow(_ r: PGResult) -> TraderState {
    TraderState(traderID: r.string(0, 0) ?? "", exchangeProvider: r.string(0, 1), marketProvider: r.string(0, 2),
                allocationPct: r.double(0, 3), cooldownJSON: r.string(0, 4), riskGuardsJSON: r.string(0, 5),
                lastDecisionAtMs: r.int(0, 6), pauseUntilMs: r.int(0, 7), updatedAtMs: r.int(0, 8))
}

/// The trader state document of `trader:<id>:state` (proto-spec §10.12): {"state": {…}, "last_decision_at": RFC 3339, "pause_until": RFC 3339}.
/// The inner object also carries the times in ms so a read needs no date parsing.
func traderStateJSON(_ t: TraderState) -> String {
    var state = JSONObjectWriter()
    state.string("trader_id", t.traderID)
    state.string("exchange_provider", t.exchangeProvider)
    state.string("market_provider", t.marketProvider)
    state.number("allocation_pct", t.allocationPct)
    state.raw("cooldown", t.cooldownJSON ?? "{}")
    state.raw("risk_guards", t.riskGuardsJSON ?? "{}")
    state.int("last_decision_at_ms", t.lastDecisionAtMs)
    state.int("pause_until_ms", t.pauseUntilMs)
    state.int("updated_at_ms", t.updatedAtMs)
    var outer = JSONObjectWriter()
    outer.raw("state", state.finish())
    outer.string("last_decision_at", t.lastDecisionAtMs.map(rfc3339))
    outer.string("pause_until", t.pauseUntilMs.map(rfc3339))
    return outer.finish()
}

struct SaveTraderStateBody: WriteBody {
    let state: TraderState
    let key: String
    let versionKey: String
    let ttl: Int

    var lockKeys: [String] { [LockOrder.traderState(state.traderID)] }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let s = state
        let params: [String?] = [s.traderID, s.exchangeProvider, s.marketProvider, s.allocationPct.map(pgText), s.cooldownJSON,
                                 s.riskGuardsJSON, s.lastDecisionAtMs.map(String.init), s.pauseUntilMs.map(String.init)]
        var row = try session.run(updateState, params)
        if row.rowCount == 0 {
            if s.exchangeProvider == nil { throw ServiceError.invalid("state.exchange_provider", "required for a new trader") }
            if s.marketProvider == nil { throw ServiceError.invalid("state.market_provider", "required for a new trader") }
            row = try session.run(insertState, params)
            if row.rowCount == 0 { row = try session.run(updateState, params) }
        }
        guard row.rowCount == 1 else { throw ServiceError(.internalError, "trader state neither updated nor inserted") }
        let stored = traderStateRow(row)
        return JobOutcome(reply: TraderStateResponse(state: stored, source: .postgres).encodedPayload(),
                          cacheMutations: [traderStateMutation(row, key: key, versionKey: versionKey, ttl: ttl)],
                          outboxIDs: try Outbox.record(session, [.traderState(trader: s.traderID)]))
    }
}
