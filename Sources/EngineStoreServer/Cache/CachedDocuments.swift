import EngineStoreWire
import Hiredis
import LibPQ

/// One kind of cached document, rebuilt per subject (a trader, ...): what the outbox, the relay,
/// Hydrate and CheckConsistency need to know of it, in one place. A new kind is its own file
/// (descriptor, key name, `OutboxIntent` constructor) plus its entry in `CachedDocuments.all`.
protocol CachedDocumentKind: Sendable {
    /// The outbox row's `kind` text. Stored in Postgres: never rename it.
    static var kind: String { get }
    /// A per-model kind's subject is a model: Hydrate and CheckConsistency handle it in their loop over
    /// models, with that model's other keys. Other kinds name their own subjects.
    var perModel: Bool { get }
    /// The subject's documents as Postgres says they are now (relay, repair).
    func rebuild(_ s: PostgresSession, subject: String, ref: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation]
    /// Hydrate's rebuild of one subject (default: `rebuild`).
    func hydrate(_ s: PostgresSession, _ r: RedisConnection, subject: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation]
    /// The subjects Hydrate rebuilds when not `perModel`: every stored one when `everything`, else those requested.
    func hydrateSubjects(_ request: HydrateRequest, everything: Bool, _ s: PostgresSession) throws -> [String]
    /// The subjects CheckConsistency checks when not `perModel`.
    func checkSubjects(_ s: PostgresSession) throws -> [String]
    /// CheckConsistency of one subject's cached keys, recorded in `tally` (default: not compared).
    func check(_ s: PostgresSession, _ r: RedisConnection, subject: String, _ rebuilder: CacheRebuilder,
               _ tally: inout ConsistencyTally) throws
}

extension CachedDocumentKind {
    var outboxKind: String { Self.kind }
    /// The outbox intent that asks for `subject`'s documents to be rebuilt.
    static func intent(_ subject: String, ref: String = "") -> OutboxIntent { .document(kind: kind, subject: subject, ref: ref) }
    var perModel: Bool { false }
    func hydrate(_ s: PostgresSession, _ r: RedisConnection, subject: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation] {
        try rebuild(s, subject: subject, ref: "", rebuilder)
    }
    func hydrateSubjects(_ request: HydrateRequest, everything: Bool, _ s: PostgresSession) throws -> [String] { [] }
    func checkSubjects(_ s: PostgresSession) throws -> [String] { [] }
    func check(_ s: PostgresSession, _ r: RedisConnection, subject: String, _ rebuilder: CacheRebuilder,
               _ tally: inout ConsistencyTally) throws {}
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
    static let all: [any CachedDocumentKind] = [RecentTradesDocument(), ConversationsDocument(), DecisionDocument(), TraderStateDocument()]

    static func named(_ kind: String) -> (any CachedDocumentKind)? { all.first { $0.outboxKind == kind } }
}

/// A per-model list capped at the newest entries (recent trades, conversations). It is merged, never
/// replaced, so entries Postgres does not have are removed by id (`unknown`).
protocol ModelListDocument: CachedDocumentKind {
    func key(_ keys: CacheKeys, model: String) -> String
    /// The newest entries merged into the list (built if missing), without the `drop` ids.
    func merge(_ s: PostgresSession, model: String, drop: [String], _ rebuilder: CacheRebuilder) throws -> CacheMutation
    /// Ids of cached entries that Postgres does not have.
    func unknown(_ list: [String], _ s: PostgresSession) throws -> [String]
    /// The documents the list should hold, newest first.
    func expected(_ s: PostgresSession, model: String) throws -> [String]
    func matches(_ cached: [String], _ expected: [String]) -> Bool
    /// A list as a CheckConsistency difference shows it.
    func describe(_ list: [String]) -> String
}

extension ModelListDocument {
    var perModel: Bool { true }

    func rebuild(_ s: PostgresSession, subject: String, ref: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation] {
        [try merge(s, model: subject, drop: [], rebuilder)]
    }

    func hydrate(_ s: PostgresSession, _ r: RedisConnection, subject: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation] {
        [try merge(s, model: subject, drop: try unknown(cached(r, subject, rebuilder), s), rebuilder)]
    }

    /// When the list exists it must be the newest entries, newest first (`<kind>_cache` if not).
    func check(_ s: PostgresSession, _ r: RedisConnection, subject model: String, _ rebuilder: CacheRebuilder,
               _ tally: inout ConsistencyTally) throws {
        let list = try cached(r, model, rebuilder)
        guard !list.isEmpty else { return }
        tally.checked += 1
        let expected = try expected(s, model: model)
        guard !matches(list, expected) else { return }
        tally.differences.append(Inconsistency(kind: Self.kind + "_cache", key: key(rebuilder.keys, model: model),
                                               databaseValue: describe(expected), otherValue: describe(list), repaired: tally.repair))
        if tally.repair { tally.repairs.append(try merge(s, model: model, drop: try unknown(list, s), rebuilder)) }
    }

    func cached(_ r: RedisConnection, _ model: String, _ rebuilder: CacheRebuilder) throws -> [String] {
        (try r.command(["LRANGE", key(rebuilder.keys, model: model), "0", "-1"]).array ?? []).compactMap(\.text)
    }
}
