import EngineStoreWire
import Foundation
import LibPQ

/// Derives what Redis should hold from what Postgres holds. The outbox relay, Hydrate and
/// CheckConsistency all use it, so "rebuildable from Postgres" is one piece of code.
struct CacheRebuilder {
    let keys: CacheKeys
    let ttl: CacheTTL
    let streamMaxLength: Int

    /// Same JSON as `PositionRow.json` (compact, same key order), built by Postgres.
    static let positionJSON = """
        '{"symbol":' || to_json(symbol)::text || ',"side":' || to_json(side)::text
            || ',"quantity":' || quantity::text || ',"entry_price":' || entry_price::text
            || ',"leverage":' || COALESCE(leverage::text, 'null') || ',"confidence":' || COALESCE(confidence::text, 'null')
            || ',"risk_usd":' || COALESCE(risk_usd::text, 'null')
            || ',"updated_at_ms":' || ((extract(epoch FROM updated_at) * 1000)::bigint)::text
            || ',"exchange":' || to_json(exchange_provider)::text || '}'
        """

    static let allOpenPositions = Statement(name: "rebuild_open_positions", sql: """
        SELECT symbol, \(positionJSON), side, quantity FROM positions WHERE model_id = $1 AND status = 'open' ORDER BY symbol
        """)
    /// The newest row of each of a model's symbols: open ones are the hash, closed ones its tombstones.
    static let positionSlots = Statement(name: "rebuild_position_slots", sql: """
        SELECT DISTINCT ON (symbol) symbol, status = 'open', cache_version, \(positionJSON)
        FROM positions WHERE model_id = $1 ORDER BY symbol, cache_version DESC, (status = 'open') DESC
        """)
    static let tradeRow = Statement(name: "rebuild_trade_row", sql: """
        SELECT model_id, symbol, side, quantity, entry_price, exit_price, realized_net_pnl, confidence,
               exit_ts_ms, exchange_provider, entry_ts_ms, leverage, id
        FROM trades WHERE id = $1
        """)
    static let existingTrades = Statement(name: "rebuild_existing_trades", sql: "SELECT id FROM trades WHERE id = ANY($1::text[])")
    static let tradeEventRow = Statement(name: "rebuild_trade_event", sql: """
        SELECT trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload::text
        FROM engine_store_trade_events WHERE trade_id = $1
        """)
    static let analyticsRow = Statement(name: "rebuild_analytics", sql: """
        SELECT payload::text, cache_version FROM model_analytics WHERE model_id = $1
        """)
    static let allModels = Statement(name: "rebuild_models", sql: """
        SELECT model_id FROM model_analytics
        UNION SELECT DISTINCT model_id FROM positions WHERE status = 'open'
        UNION SELECT DISTINCT model_id FROM trades
        UNION SELECT DISTINCT model_id FROM decision_cycles
        UNION SELECT DISTINCT model_id FROM conversations
        ORDER BY 1
        """)
    static let allTraders = Statement(name: "rebuild_traders", sql: "SELECT trader_id FROM trader_state ORDER BY 1")

    // MARK: expected values

    func positions(_ s: PostgresSession, model: String) throws -> [(symbol: String, json: String)] {
        let r = try s.run(Self.allOpenPositions, [model])
        return (0..<r.rowCount).map { (r.string($0, 0) ?? "", r.string($0, 1) ?? "") }
    }

    /// The positions hash as Postgres has it, with versions and tombstones (see CacheScripts.positionsSync).
    func positionsSync(_ s: PostgresSession, model: String, mode: CacheMutation.SyncMode) throws -> CacheMutation {
        let r = try s.run(Self.positionSlots, [model])
        var open: [(field: String, version: String, value: String)] = []
        var closed: [(field: String, version: String)] = []
        for i in 0..<r.rowCount {
            let symbol = r.string(i, 0) ?? "", version = CacheVersion.of(r.int(i, 2) ?? 0)
            if r.bool(i, 1) == true { open.append((symbol, version, r.string(i, 3) ?? "{}")) } else { closed.append((symbol, version)) }
        }
        let key = keys.positions(model: model)
        return .positionsSync(key: key, versionKey: keys.version(of: key), open: open, closed: closed, mode: mode,
                              ttlSeconds: ttl.positions)
    }

    func recentTrades(_ s: PostgresSession, model: String) throws -> [String] {
        let r = try s.run(recentTradesOfModel, [model, "100"])
        return (0..<r.rowCount).map { TradeRow(r, $0).json }
    }

    /// The newest trades merged into the list (built if missing); `drop` removes entries of trades
    /// that Postgres does not have (repair).
    func recentTradesMerge(_ s: PostgresSession, model: String, drop: [String] = []) throws -> CacheMutation {
        .tradesMerge(key: keys.recentTrades(model: model), items: try recentTrades(s, model: model), maxLength: 100,
                     mode: .build, ttlSeconds: ttl.medium, drop: drop)
    }

    func lastDecision(_ s: PostgresSession, model: String) throws -> CacheMutation? {
        let row = try s.run(lastDecisionRow, [model])
        guard row.rowCount == 1 else { return nil }
        let json = DecisionRPC.json(LastDecision(modelID: model, success: row.bool(0, 0) ?? false, timestampMs: row.int(0, 1) ?? 0,
                                                 symbol: row.string(0, 2), action: row.string(0, 3),
                                                 confidence: DecisionRPC.nof0Confidence(row.double(0, 4)),
                                                 error: row.string(0, 5), source: .postgres))
        let key = keys.lastDecision(model: model)
        return .versionedSet(key: key, versionKey: keys.version(of: key), value: json, version: row.string(0, 6) ?? "",
                             ttlSeconds: ttl.medium)
    }

    /// analytics:<model> and since_inception:<model>, versioned by the row.
    func analytics(_ s: PostgresSession, model: String) throws -> [CacheMutation] {
        let r = try s.run(Self.analyticsRow, [model])
        guard r.rowCount == 1, let payload = r.string(0, 0) else { return [] }
        let version = CacheVersion.of(r.int(0, 1) ?? 0)
        let since = (try? AnalyticsRPC.Figures(payload))?.sinceInceptionJSON ?? "{}"
        let a = keys.analytics(model: model), b = keys.sinceInception(model: model)
        return [.versionedSet(key: a, versionKey: keys.version(of: a), value: payload, version: version, ttlSeconds: ttl.analytics),
                .versionedSet(key: b, versionKey: keys.version(of: b), value: since, version: version, ttlSeconds: ttl.long)]
    }

    func leaderboard(_ s: PostgresSession) throws -> LeaderboardState { try LeaderboardState(s) }

    func traderState(_ s: PostgresSession, trader: String) throws -> String? {
        let row = try s.run(selectState, [trader])
        guard row.rowCount == 1 else { return nil }
        return traderStateJSON(traderStateRow(row))
    }

    // MARK: mutations

    /// What a batch of outbox intents means for Redis now; each key is rebuilt once.
    /// A model's positions are synced once, and the leaderboard (which spans every model) is built
    /// once, after the rest, however many intents ask for them.
    func mutations(for intents: [OutboxIntent], _ s: PostgresSession) throws -> [CacheMutation] {
        var out: [CacheMutation] = []
        var synced = Set<String>()
        var leaderboardOwed = false
        for intent in intents {
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
        case .recentTrades(let model):
            return [try recentTradesMerge(s, model: model)]
        case .closeEvent(let id):
            let r = try s.run(Self.tradeRow, [id])
            guard r.rowCount == 1 else { return [] }
            let trade = TradeRow(r, 0)
            return [.streamAdd(key: keys.tradeStream, maxLength: streamMaxLength, fields: ClosePositionBody.streamFields(id, trade))]
        case .tradeEvent(let id):
            let r = try s.run(Self.tradeEventRow, [id])
            guard r.rowCount == 1 else { return [] }
            let event = PublishTradeEventRequest(
                tradeID: id, modelID: r.string(0, 1) ?? "", symbol: r.string(0, 2) ?? "", kind: r.string(0, 3) ?? "",
                side: r.string(0, 4).map { $0 == "short" ? .short : .long }, price: r.double(0, 5), size: r.double(0, 6),
                fee: r.double(0, 7), timestampMs: r.int(0, 8) ?? 0, payloadJSON: r.string(0, 9))
            return TradeEventBody.cacheMutations(event, keys: keys, streamMaxLength: streamMaxLength)
        case .decision(let model):
            return try lastDecision(s, model: model).map { [$0] } ?? []
        case .analytics(let model):
            return try analytics(s, model: model)
        case .leaderboard:
            return []
        case .traderState(let trader):
            let row = try s.run(selectState, [trader])
            guard row.rowCount == 1 else { return [] }
            let key = keys.traderState(trader: trader)
            return [traderStateMutation(row, key: key, versionKey: keys.version(of: key), ttl: ttl.medium)]
        case .conversations(let model):
            return [try conversationsMerge(s, model: model)]
        }
    }

    /// Every key of a model, rebuilt whole (Hydrate).
    func hydrate(_ s: PostgresSession, model: String, dropTrades: [String] = [], dropMessages: [String] = []) throws -> [CacheMutation] {
        var out: [CacheMutation] = [try positionsSync(s, model: model, mode: .replace),
                                    try recentTradesMerge(s, model: model, drop: dropTrades),
                                    try conversationsMerge(s, model: model, drop: dropMessages)]
        if let decision = try lastDecision(s, model: model) { out.append(decision) }
        out.append(contentsOf: try analytics(s, model: model))
        return out
    }

    /// The leaderboard sorted set replaced whole, plus its rendered cache.
    func hydrateLeaderboard(_ s: PostgresSession) throws -> [CacheMutation] {
        try leaderboard(s).mutations(keys, ttl: ttl)
    }
}
