import LibPQ

/// Derives what Redis should hold from what Postgres holds. The outbox relay, Hydrate and
/// CheckConsistency all use it, so "rebuildable from Postgres" is one piece of code.
struct CacheRebuilder {
    let keys: CacheKeys
    let ttl: CacheTTL
    let streamMaxLength: Int

    /// Every model any cached document is about.
    struct ModelIDs: PGStatement {
        static let sql = SQLText.modelIds
        var bindings: [String?] { [] }
        static func decode(_ r: PGRow) -> String { r.string("model_id") ?? "" }
    }

    // MARK: expected values (each document made by its store's one encoder)

    func positions(_ s: PostgresSession, model: String) throws -> [PositionRow] {
        try s.rows(PositionStore.OpenOfModel(model: model))
    }

    func positionsSync(_ s: PostgresSession, model: String, mode: CacheMutation.SyncMode) throws -> CacheMutation {
        try PositionStore.sync(s, model: model, keys: keys, mode: mode, ttl: ttl.positions)
    }

    func leaderboard(_ s: PostgresSession) throws -> LeaderboardState { try LeaderboardState(s) }

    // MARK: mutations

    /// What a batch of outbox intents means for Redis now; each key is rebuilt once.
    /// A model's positions are synced once, and the leaderboard (which spans every model) is built
    /// once, after the rest, however many intents ask for them.
    func mutations(for intents: [OutboxIntent], _ s: PostgresSession) throws -> [CacheMutation] {
        var out: [CacheMutation] = []
        var synced = Set<String>()
        var leaderboardOwed = false
        // A row of several intents stands for each of them.
        for intent in intents.flatMap(\.parts) {
            switch intent {
            case .position(let model, _):
                guard synced.insert(model).inserted else { continue }
            case .analytics, .leaderboard:
                leaderboardOwed = true
            default:
                break
            }
            out.append(contentsOf: try documents(for: intent, s))
        }
        if leaderboardOwed { out.append(contentsOf: try leaderboard(s).mutations(keys, ttl: ttl)) }
        return out
    }

    /// What one outbox intent means for Redis now.
    func mutations(for intent: OutboxIntent, _ s: PostgresSession) throws -> [CacheMutation] {
        try mutations(for: [intent], s)
    }

    /// The documents of one intent, except the leaderboard (see `mutations(for:)`).
    private func documents(for intent: OutboxIntent, _ s: PostgresSession) throws -> [CacheMutation] {
        switch intent {
        case .position(let model, _):
            return [try positionsSync(s, model: model, mode: .merge)]
        case .intents(let list):
            return try list.flatMap { try documents(for: $0, s) }  // `mutations(for:)` flattens first
        case .closeEvent(let id):
            return try s.first(TradeStore.ByID(id: id)).map { [$0.closeEvent(keys, streamMaxLength: streamMaxLength)] } ?? []
        case .tradeEvent(let id):
            guard let event = try s.first(TradeStore.EventByID(id: id)) else { return [] }
            return TradeStore.eventMutations(event, keys: keys, streamMaxLength: streamMaxLength)
        case .analytics(let model):
            return try AnalyticsStore.rebuild(s, model: model, keys: keys, ttl: ttl)
        case .leaderboard:
            return []
        case .document(let kind, let subject, let ref):
            return try CachedDocuments.named(kind)?.rebuild(s, subject: subject, ref: ref, self) ?? []
        }
    }

    /// Every key of a model, rebuilt whole (Hydrate).
    /// The kinds in `CachedDocuments.all` that are `perModel` add theirs (see `Hydrator`).
    func hydrate(_ s: PostgresSession, model: String) throws -> [CacheMutation] {
        var out: [CacheMutation] = [try positionsSync(s, model: model, mode: .replace)]
        out.append(contentsOf: try AnalyticsStore.rebuild(s, model: model, keys: keys, ttl: ttl))
        return out
    }

    /// The leaderboard sorted set replaced whole, plus its rendered cache.
    func hydrateLeaderboard(_ s: PostgresSession) throws -> [CacheMutation] {
        try leaderboard(s).mutations(keys, ttl: ttl)
    }
}
