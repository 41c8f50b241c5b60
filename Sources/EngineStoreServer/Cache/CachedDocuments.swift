import EngineStoreWire
import Hiredis
import LibPQ

/// One kind of cached document, rebuilt per subject (a trader, ...): what the outbox, the relay,
/// Hydrate and CheckConsistency need to know of it, in one place. A new kind is its own file
/// (descriptor, key name, `OutboxIntent` constructor) plus its entry in `CachedDocuments.all`.
protocol CachedDocumentKind: Sendable {
    /// The outbox row's `kind` text. Stored in Postgres: never rename it.
    var outboxKind: String { get }
    /// The subject's documents as Postgres says they are now (relay, repair, Hydrate).
    func rebuild(_ s: PostgresSession, subject: String, ref: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation]
    /// The subjects Hydrate rebuilds: every stored one when `everything`, else those the request names.
    func hydrateSubjects(_ request: HydrateRequest, everything: Bool, _ s: PostgresSession) throws -> [String]
    /// CheckConsistency of this kind's cached keys, recorded in `tally`.
    func check(_ s: PostgresSession, _ r: RedisConnection, _ rebuilder: CacheRebuilder, _ tally: inout ConsistencyTally) throws
}

/// What CheckConsistency has found so far; the repairs are applied once, at the end.
struct ConsistencyTally {
    let repair: Bool
    var checked = 0
    var differences: [Inconsistency] = []
    var repairs: [CacheMutation] = []
}

enum CachedDocuments {
    /// Every descriptor-owned kind. Outbox decode, the relay, Hydrate and CheckConsistency iterate it.
    static let all: [any CachedDocumentKind] = [TraderStateDocument()]

    static func named(_ kind: String) -> (any CachedDocumentKind)? { all.first { $0.outboxKind == kind } }
}
