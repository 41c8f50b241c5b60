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
            let r = try RecordDecisionCycleRequest.decodeWrite(payload)
            try Validate.keyPart(r.modelID, "model_id")
            try Validate.text(r.cotTrace, "cot_trace", maxBytes: Self.maxTraceBytes)
            try Validate.text(r.promptDigest, "prompt_digest", maxBytes: 256)
            try Validate.text(r.errorMessage, "error_message", maxBytes: 64 * 1024)
            try Validate.timestampMs(r.executedAtMs, "executed_at_ms", maxSkewMs: skew)
            if let n = r.cycleNumber, n < 0 || n > Int64(Int32.max) { throw .invalid("cycle_number", "out of INT range") }
            let first = try Self.firstDecision(r.decisionsJSON)
            context.submitWrite(r, method, payload: payload,
                body: RecordDecisionBody(request: r, first: first, keys: context.keys, ttl: context.configuration.ttl.medium),
                reply: reply)
        case .getLastDecision:
            let r = try GetLastDecisionRequest.decodeRequest(payload)
            try Validate.keyPart(r.modelID, "model_id")
            let (keys, ttl) = (context.keys, context.configuration.ttl.medium)
            CachedRead(context: context).run(reply, family: "decision", command: ["GET", context.keys.lastDecision(model: r.modelID)],
                                             fromCache: { cached in
                cached.text.flatMap(DecisionStore.decision(document:))?.encodedPayload()
            }, fromPostgres: { session in
                guard let (d, version) = try DecisionStore.last(session, model: r.modelID) else {
                    throw ServiceError(.notFound, "no decision cycle recorded for \(r.modelID)")
                }
                return JobOutcome(reply: d.encodedPayload(),
                                  cacheMutations: [DecisionStore.mutation(d, version: version, keys: keys, ttl: ttl)])
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
                             confidence: DecisionStore.nof0Confidence((first["confidence"] as? NSNumber)?.doubleValue))
    }
}

struct RecordDecisionBody: WriteBody {
    let request: RecordDecisionCycleRequest
    let first: DecisionRPC.FirstDecision
    let keys: CacheKeys
    let ttl: Int

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = request
        guard let row = try session.first(DecisionStore.Insert(request: r)) else {
            throw ServiceError(.internalError, "decision cycle not inserted")
        }
        let response = RecordDecisionCycleResponse(id: row.id, executedAtMs: row.executedAtMs)
        let last = LastDecision(modelID: r.modelID, success: r.success, timestampMs: response.executedAtMs,
                                symbol: first.symbol, action: first.action, confidence: first.confidence,
                                error: r.errorMessage, source: .postgres)
        return JobOutcome(reply: response.encodedPayload(),
                          cacheMutations: [DecisionStore.mutation(last, version: row.version, keys: keys, ttl: ttl)],
                          outboxIDs: try Outbox.record(session, [.decision(model: r.modelID)]))
    }
}
