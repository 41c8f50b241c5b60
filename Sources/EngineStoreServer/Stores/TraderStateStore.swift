import EngineStoreWire
import LibPQ

/// Trader state (SQL/trader_state.sql) and the `trader:<id>:state` document.
enum TraderStateStore {
    /// A row (SQL fragment `trader_state_columns`): the state and its cache version.
    struct Row {
        var state: TraderState
        var version: Int64
        init(_ r: PGRow) {
            state = TraderState(
                traderID: r.string("trader_id") ?? "", exchangeProvider: r.string("exchange_provider"),
                marketProvider: r.string("market_provider"), allocationPct: r.double("allocation_pct"),
                cooldownJSON: r.string("cooldown"), riskGuardsJSON: r.string("risk_guards"),
                lastDecisionAtMs: r.int("last_decision_ms"), pauseUntilMs: r.int("pause_until_ms"), updatedAtMs: r.int("updated_ms"))
            version = r.int("cache_version") ?? 0
        }
    }

    struct Select: PGStatement {
        static let sql = SQLText.traderStateSelect
        let trader: String
        var bindings: [String?] { [trader] }
        static func decode(_ r: PGRow) -> Row { Row(r) }
    }

    /// `$1`…`$8` of update and insert: only the fields sent change.
    static func fields(_ s: TraderState) -> [String?] {
        [s.traderID, s.exchangeProvider, s.marketProvider, s.allocationPct.map(pgText), s.cooldownJSON,
         s.riskGuardsJSON, s.lastDecisionAtMs.map(String.init), s.pauseUntilMs.map(String.init)]
    }

    struct Update: PGStatement {
        static let sql = SQLText.traderStateUpdate
        let state: TraderState
        var bindings: [String?] { TraderStateStore.fields(state) }
        static func decode(_ r: PGRow) -> Row { Row(r) }
    }

    /// No row when another transaction inserted the trader first.
    struct Insert: PGStatement {
        static let sql = SQLText.traderStateInsert
        let state: TraderState
        var bindings: [String?] { TraderStateStore.fields(state) }
        static func decode(_ r: PGRow) -> Row { Row(r) }
    }

    struct IDs: PGStatement {
        static let sql = SQLText.traderIds
        var bindings: [String?] { [] }
        static func decode(_ r: PGRow) -> String { r.string("trader_id") ?? "" }
    }

    /// The trader state document (proto-spec §10.12): {"state": {…}, "last_decision_at": RFC 3339,
    /// "pause_until": RFC 3339}. The inner object also carries the times in ms so a read needs no date
    /// parsing. The only encoder of it.
    static func json(_ t: TraderState) -> String {
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

    /// The document read back; nil when it is not a trader state document.
    static func state(document text: String) -> TraderState? {
        guard let o = jsonObject(text),
              let state = o["state"] as? [String: Any], let id = state.string("trader_id") else { return nil }
        return TraderState(traderID: id, exchangeProvider: state.string("exchange_provider"),
                           marketProvider: state.string("market_provider"), allocationPct: state.double("allocation_pct"),
                           cooldownJSON: state.jsonText("cooldown"), riskGuardsJSON: state.jsonText("risk_guards"),
                           lastDecisionAtMs: state.int64("last_decision_at_ms"), pauseUntilMs: state.int64("pause_until_ms"),
                           updatedAtMs: state.int64("updated_at_ms"))
    }

    /// The row's document as a cache write, under its version.
    static func mutation(_ row: Row, keys: CacheKeys, ttl: Int) -> CacheMutation {
        let key = keys.traderState(trader: row.state.traderID)
        return .versionedSet(key: key, versionKey: keys.version(of: key), value: json(row.state),
                             version: CacheVersion.of(row.version), ttlSeconds: ttl)
    }
}
