import EngineStoreWire
import Hiredis
import LibPQ

extension CacheKeys {
    func traderState(trader: String) -> String { namespace + "trader:" + trader + ":state" }
}

extension OutboxIntent {
    static func traderState(trader: String) -> OutboxIntent { TraderStateDocument.intent(trader) }
}

/// `trader:<id>:state`, one per trader (SaveTraderState, GetTraderState).
struct TraderStateDocument: CachedDocumentKind {
    static let kind = "trader_state"

    func rebuild(_ s: PostgresSession, subject: String, ref: String, _ rebuilder: CacheRebuilder) throws -> [CacheMutation] {
        try s.first(TraderStateStore.Select(trader: subject)).map {
            [TraderStateStore.mutation($0, keys: rebuilder.keys, ttl: rebuilder.ttl.medium)]
        } ?? []
    }

    func hydrateSubjects(_ request: HydrateRequest, everything: Bool, _ s: PostgresSession) throws -> [String] {
        everything ? try s.rows(TraderStateStore.IDs()) : request.traders
    }

    func checkSubjects(_ s: PostgresSession) throws -> [String] { try s.rows(TraderStateStore.IDs()) }

    /// A stored trader whose key exists must hold its row's state.
    func check(_ s: PostgresSession, _ r: RedisConnection, subject trader: String, _ rebuilder: CacheRebuilder,
               _ tally: inout ConsistencyTally) throws {
        let key = rebuilder.keys.traderState(trader: trader)
        guard let cached = try r.command(["GET", key]).text else { return }
        tally.checked += 1
        let expected = try s.first(TraderStateStore.Select(trader: trader)).map { TraderStateStore.json($0.state) }
        if !sameJSON(expected, cached) {
            tally.differences.append(Inconsistency(kind: "trader_state_cache", key: key, databaseValue: expected ?? "",
                                                   otherValue: cached, repaired: tally.repair))
            if tally.repair { tally.repairs.append(contentsOf: try rebuild(s, subject: trader, ref: "", rebuilder)) }
        }
    }
}
