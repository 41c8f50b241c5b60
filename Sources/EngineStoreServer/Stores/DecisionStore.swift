import EngineStoreWire
import LibPQ

/// Decision cycles (SQL/decisions.sql) and the `decision:last:<model>` document.
enum DecisionStore {
    struct Insert: PGStatement {
        struct Row {
            var id: Int64
            var executedAtMs: Int64
            var version: String
        }
        static let sql = SQLText.decisionInsert
        let request: RecordDecisionCycleRequest
        var bindings: [String?] {
            let r = request
            return [r.modelID, r.cycleNumber.map(String.init), r.promptDigest, r.cotTrace, r.decisionsJSON,
                    pgText(r.success), r.errorMessage, r.executedAtMs.map(String.init)]
        }
        static func decode(_ r: PGRow) -> Row {
            Row(id: r.int("id") ?? 0, executedAtMs: r.int("executed_ms") ?? 0, version: r.string("version") ?? "")
        }
    }

    /// A model's last cycle, as the document holds it, and its version.
    struct Last: PGStatement {
        static let sql = SQLText.decisionLast
        let model: String
        var bindings: [String?] { [model] }
        static func decode(_ r: PGRow) -> (decision: LastDecision, version: String) {
            // The model is the one asked for (`decode` has no access to it); `Last.read` fills it in.
            (LastDecision(modelID: "", success: r.bool("success") ?? false, timestampMs: r.int("executed_ms") ?? 0,
                          symbol: r.string("symbol"), action: r.string("action"), confidence: nof0Confidence(r.double("confidence")),
                          error: r.string("error_message"), source: .postgres),
             r.string("version") ?? "")
        }
    }

    /// The last decision of `model` from Postgres, with its version; nil when it has none.
    static func last(_ s: PostgresSession, model: String) throws -> (decision: LastDecision, version: String)? {
        guard var found = try s.first(Last(model: model)) else { return nil }
        found.decision.modelID = model
        return found
    }

    /// nof0 keeps the first action's confidence as an integer, rounded half away from zero (Go's
    /// math.Round); the cache document and both read paths use the same value.
    static func nof0Confidence(_ c: Double?) -> Double? { c.map { $0.rounded(.toNearestOrAwayFromZero) } }

    /// The decision document (proto-spec §10.12): model_id, success, timestamp_ms, symbol, action,
    /// confidence (an integer), error. The only encoder of it.
    static func json(_ d: LastDecision) -> String {
        var j = JSONObjectWriter()
        j.string("model_id", d.modelID)
        j.bool("success", d.success)
        j.int("timestamp_ms", d.timestampMs)
        j.string("symbol", d.symbol)
        j.string("action", d.action)
        j.number("confidence", d.confidence)
        j.string("error", d.error)
        return j.finish()
    }

    /// The document read back; nil when it is not a decision document.
    static func decision(document text: String) -> LastDecision? {
        guard let o = jsonObject(text),
              let model = o.string("model_id") else { return nil }
        return LastDecision(modelID: model, success: o.bool("success") ?? false, timestampMs: o.int64("timestamp_ms") ?? 0,
                            symbol: o.string("symbol"), action: o.string("action"), confidence: o.double("confidence"),
                            error: o.string("error"), source: .cache)
    }

    /// The document of `d` as a cache write, under its version.
    static func mutation(_ d: LastDecision, version: String, keys: CacheKeys, ttl: Int) -> CacheMutation {
        let key = keys.lastDecision(model: d.modelID)
        return .versionedSet(key: key, versionKey: keys.version(of: key), value: json(d), version: version, ttlSeconds: ttl)
    }
}
