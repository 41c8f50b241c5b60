import EngineStoreWire
import Hiredis
import LibPQ

/// `decision:last:<model>`, a model's newest decision (SaveDecision). CheckConsistency does not compare it.
struct DecisionDocument: CachedDocumentKind {
    static let kind = "decision"
    var perModel: Bool { true }

    func rebuild(_ s: PostgresSession, subject: String, ref: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation] {
        try DecisionStore.last(s, model: subject).map {
            [DecisionStore.mutation($0.decision, version: $0.version, keys: rebuilder.keys, ttl: rebuilder.ttl.medium)]
        } ?? []
    }
}

extension CacheKeys {
    func lastDecision(model: String) -> String { namespace + "decision:last:" + model }
}

extension OutboxIntent {
    static func decision(model: String) -> OutboxIntent { DecisionDocument.intent(model) }
}
