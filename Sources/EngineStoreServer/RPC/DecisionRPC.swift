import EngineStoreWire
import Foundation
import LibPQ

/// Decision cycles: RecordDecisionCycle writes `decision_cycles` and `nof0:decision:last:<model>`;
/// GetLastDecision reads that key, falling back to the newest row.
struct DecisionRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.recordDecisionCycle, .getLastDecision] }

    static let maxTraceBytes = 1 << 20

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        let skew = context.configuration.maxClockSkewMs
        switch method {
        case .recordDecisionCycle:
            let r = try RecordDecisionCycleRequest.decodeRequest(payload)
            try Validate.identifier(r.idempotencyKey, "idempotency_key")
            try Validate.keyPart(r.modelID, "model_id")
            try Validate.text(r.cotTrace, "cot_trace", maxBytes: Self.maxTraceBytes)
            try Validate.text(r.promptDigest, "prompt_digest", maxBytes: 256)
            try Validate.text(r.errorMessage, "error_message", maxBytes: 64 * 1024)
            try Validate.timestampMs(r.executedAtMs, "executed_at_ms", maxSkewMs: skew)
            if let n = r.cycleNumber, n < 0 || n > Int64(Int32.max) { throw .invalid("cycle_number", "out of INT range") }
            let first = try Self.firstDecision(r.decisionsJSON)
            context.postgres.submit(IdempotentWrite(
                key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: RecordDecisionBody(request: r, first: first, key: context.keys.lastDecision(model: r.modelID),
                                         versionKey: context.keys.version(of: context.keys.lastDecision(model: r.modelID)),
                                         ttl: context.configuration.ttl.medium),
                reply: reply))
        case .getLastDecision:
            let r = try GetLastDecisionRequest.decodeRequest(payload)
            try Validate.keyPart(r.modelID, "model_id")
            let key = context.keys.lastDecision(model: r.modelID)
            let ttl = context.configuration.ttl.medium
            CachedRead(context: context).run(reply, family: "decision", command: ["GET", key], fromCache: { cached in
                guard let o = cachedObject(cached), let model = o.string("model_id") else { return nil }
                return LastDecision(modelID: model, success: o.bool("success") ?? false, timestampMs: o.int64("timestamp_ms") ?? 0,
                                    symbol: o.string("symbol"), action: o.string("action"), confidence: o.double("confidence"),
                                    error: o.string("error"), source: .cache).encodedPayload()
            }, fromPostgres: { session in
                let row = try session.run(lastDecisionRow, [r.modelID])
                guard row.rowCount == 1 else { throw ServiceError(.notFound, "no decision cycle recorded for \(r.modelID)") }
                let d = LastDecision(modelID: r.modelID, success: row.bool(0, 0) ?? false, timestampMs: row.int(0, 1) ?? 0,
                                     symbol: row.string(0, 2), action: row.string(0, 3), confidence: Self.nof0Confidence(row.double(0, 4)),
                                     error: row.string(0, 5), source: .postgres)
                return JobOutcome(reply: d.encodedPayload(), cacheMutations: [
                    .versionedSet(key: key, versionKey: context.keys.version(of: key), value: Self.json(d),
                                  version: row.string(0, 6) ?? "", ttlSeconds: ttl),
                ])
            })
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
        }
    }

    struct FirstDecision: Sendable {
        var symbol: String?
        var action: String?
        var confidence: Double?
    }

    /// `decisions_json` must be a JSON array; its first element (an object) feeds `decision:last`.
    static func firstDecision(_ json: String?) throws(ServiceError) -> FirstDecision {
        guard let json else { return FirstDecision() }
        guard json.utf8.count <= 1 << 20 else { throw .invalid("decisions_json", "longer than 1 MiB") }
        try Validate.jsonDepth(json, "decisions_json")
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let array = parsed as? [Any] else {
            throw .invalid("decisions_json", "must be a JSON array")
        }
        guard let first = array.first as? [String: Any] else { return FirstDecision() }
        return FirstDecision(symbol: (first["symbol"] as? String)?.uppercased(), action: first["action"] as? String,
                             confidence: nof0Confidence((first["confidence"] as? NSNumber)?.doubleValue))
    }

    /// nof0 keeps the first action's confidence as an integer, rounded half away from zero (Go's
    /// math.Round); the cache document and both read paths use the same value.
    static func nof0Confidence(_ c: Double?) -> Double? { c.map { $0.rounded(.toNearestOrAwayFromZero) } }

    /// The decision document (proto-spec §10.12): model_id, success, timestamp_ms, symbol, action, confidence (an integer), error.
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
}

private let insertCycle = Statement(name: "decision_insert", sql: """
    INSERT INTO decision_cycles (model_id, cycle_number, prompt_digest, cot_trace, decisions, success, error_message, executed_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, COALESCE(to_timestamp($8::float8 / 1000), now()))
    RETURNING id, (extract(epoch FROM executed_at) * 1000)::bigint, \(decisionVersion)
    """)

/// The order of "last" (executed_at, then id) as a fixed-width version string (see `CacheVersion`).
let decisionVersion = """
    lpad(((extract(epoch FROM executed_at) * 1000000)::bigint)::text, 17, '0') || lpad(id::text, 19, '0')
    """

let lastDecisionRow = Statement(name: "decision_last", sql: """
    SELECT success, (extract(epoch FROM executed_at) * 1000)::bigint, upper(decisions->0->>'symbol'), decisions->0->>'action',
           CASE WHEN jsonb_typeof(decisions->0->'confidence') = 'number' THEN (decisions->0->>'confidence')::float8 END,
           error_message, \(decisionVersion)
    FROM decision_cycles WHERE model_id = $1 ORDER BY executed_at DESC, id DESC LIMIT 1
    """)

struct RecordDecisionBody: WriteBody {
    let request: RecordDecisionCycleRequest
    let first: DecisionRPC.FirstDecision
    let key: String
    let versionKey: String
    let ttl: Int

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        let row = try session.run(insertCycle, [
            r.modelID, r.cycleNumber.map(String.init), r.promptDigest, r.cotTrace, r.decisionsJSON,
            r.success ? "true" : "false", r.errorMessage, r.executedAtMs.map(String.init),
        ])
        let response = RecordDecisionCycleResponse(id: row.int(0, 0) ?? 0, executedAtMs: row.int(0, 1) ?? 0)
        let last = LastDecision(modelID: r.modelID, success: r.success, timestampMs: response.executedAtMs,
                                symbol: first.symbol, action: first.action, confidence: first.confidence,
                                error: r.errorMessage, source: .postgres)
        return JobOutcome(reply: response.encodedPayload(),
                          cacheMutations: [.versionedSet(key: key, versionKey: versionKey, value: DecisionRPC.json(last),
                                                         version: row.string(0, 2) ?? "", ttlSeconds: ttl)],
                          outboxIDs: try Outbox.record(session, [.decision(model: r.modelID)]))
    }
}
