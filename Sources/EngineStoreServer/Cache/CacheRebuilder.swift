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
    static let oneOpenPosition = Statement(name: "rebuild_open_position", sql: """
        SELECT symbol, \(positionJSON) FROM positions WHERE model_id = $1 AND symbol = $2 AND status = 'open'
        """)
    static let tradeRow = Statement(name: "rebuild_trade_row", sql: """
        SELECT model_id, symbol, side, quantity, entry_price, exit_price, realized_net_pnl, confidence,
               exit_ts_ms, exchange_provider, entry_ts_ms, leverage
        FROM trades WHERE id = $1
        """)
    static let tradeEventRow = Statement(name: "rebuild_trade_event", sql: """
        SELECT trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload::text
        FROM engine_store_trade_events WHERE trade_id = $1
        """)
    static let analyticsRow = Statement(name: "rebuild_analytics", sql: "SELECT payload::text FROM model_analytics WHERE model_id = $1")
    static let allModels = Statement(name: "rebuild_models", sql: """
        SELECT model_id FROM model_analytics
        UNION SELECT DISTINCT model_id FROM positions WHERE status = 'open'
        UNION SELECT DISTINCT model_id FROM trades
        UNION SELECT DISTINCT model_id FROM decision_cycles
        ORDER BY 1
        """)
    static let allTraders = Statement(name: "rebuild_traders", sql: "SELECT trader_id FROM trader_state ORDER BY 1")

    // MARK: expected values

    func positions(_ s: PostgresSession, model: String) throws -> [(symbol: String, json: String)] {
        let r = try s.run(Self.allOpenPositions, [model])
        return (0..<r.rowCount).map { (r.string($0, 0) ?? "", r.string($0, 1) ?? "") }
    }

    func recentTrades(_ s: PostgresSession, model: String) throws -> [String] {
        let r = try s.run(recentTradesOfModel, [model, "100"])
        return (0..<r.rowCount).map { TradeRow(r, $0).json }
    }

    func lastDecision(_ s: PostgresSession, model: String) throws -> String? {
        let row = try s.run(lastDecisionRow, [model])
        guard row.rowCount == 1 else { return nil }
        return DecisionRPC.json(LastDecision(modelID: model, success: row.bool(0, 0) ?? false, timestampMs: row.int(0, 1) ?? 0,
                                             symbol: row.string(0, 2), action: row.string(0, 3), confidence: row.double(0, 4),
                                             error: row.string(0, 5), source: .postgres))
    }

    /// (analytics payload, since_inception JSON)
    func analytics(_ s: PostgresSession, model: String) throws -> (String, String)? {
        let r = try s.run(Self.analyticsRow, [model])
        guard r.rowCount == 1, let payload = r.string(0, 0) else { return nil }
        guard let f = try? AnalyticsRPC.Figures(payload) else { return (payload, "{}") }
        return (payload, f.sinceInceptionJSON)
    }

    func leaderboard(_ s: PostgresSession) throws -> (members: [(Double, String)], rendered: String) {
        let all = try s.run(leaderboardRows, ["1000"])
        let members = (0..<all.rowCount).compactMap { i in all.double(i, 1).map { ($0, all.string(i, 0) ?? "") } }
        let rendered = try s.run(renderLeaderboard, []).string(0, 0) ?? "[]"
        return (members, rendered)
    }

    func traderState(_ s: PostgresSession, trader: String) throws -> String? {
        let row = try s.run(selectState, [trader])
        guard row.rowCount == 1 else { return nil }
        return traderStateJSON(traderStateRow(row))
    }

    // MARK: mutations

    /// What a batch of outbox intents means for Redis now. Position intents of one model share one
    /// read of its open positions; the first carries them as the rebuild snapshot.
    func mutations(for intents: [OutboxIntent], _ s: PostgresSession) throws -> [CacheMutation] {
        var out: [CacheMutation] = []
        var openByModel: [String: [(symbol: String, json: String)]] = [:]
        for intent in intents {
            guard case .position(let model, let symbol) = intent else {
                out.append(contentsOf: try mutations(for: intent, s))
                continue
            }
            let key = keys.positions(model: model)
            let first = openByModel[model] == nil
            if first { openByModel[model] = try positions(s, model: model) }
            let open = openByModel[model]!
            guard let json = open.first(where: { $0.symbol == symbol })?.json else {
                out.append(.hashDelete(key: key, field: symbol))
                continue
            }
            out.append(.hashSetOrBuild(key: key, field: symbol, value: json,
                                       snapshot: first ? open.map { ($0.symbol, $0.json) } : [], ttlSeconds: ttl.positions))
        }
        return out
    }

    /// What one outbox intent means for Redis now.
    func mutations(for intent: OutboxIntent, _ s: PostgresSession) throws -> [CacheMutation] {
        switch intent {
        case .position(let model, let symbol):
            let key = keys.positions(model: model)
            let one = try s.run(Self.oneOpenPosition, [model, symbol])
            guard one.rowCount == 1, let json = one.string(0, 1) else { return [.hashDelete(key: key, field: symbol)] }
            // Never empty here (the position itself is open), so a missing hash is always built.
            let all = try positions(s, model: model).map { ($0.symbol, $0.json) }
            return [.hashSetOrBuild(key: key, field: symbol, value: json, snapshot: all, ttlSeconds: ttl.positions)]
        case .recentTrades(let model):
            return [.replaceList(key: keys.recentTrades(model: model), values: try recentTrades(s, model: model), ttlSeconds: ttl.medium)]
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
            guard let json = try lastDecision(s, model: model) else { return [] }
            return [.set(key: keys.lastDecision(model: model), value: json, ttlSeconds: ttl.medium)]
        case .analytics(let model):
            var out: [CacheMutation] = []
            if let (payload, since) = try analytics(s, model: model) {
                out.append(.set(key: keys.analytics(model: model), value: payload, ttlSeconds: ttl.analytics))
                out.append(.set(key: keys.sinceInception(model: model), value: since, ttlSeconds: ttl.long))
            }
            let board = try leaderboard(s)
            out.append(.sortedSetAdd(key: keys.leaderboard, members: board.members))
            out.append(.set(key: keys.leaderboardCache, value: board.rendered, ttlSeconds: ttl.medium))
            return out
        case .traderState(let trader):
            guard let json = try traderState(s, trader: trader) else { return [] }
            return [.set(key: keys.traderState(trader: trader), value: json, ttlSeconds: ttl.medium)]
        }
    }

    /// Every key of a model, written whole (Hydrate).
    func hydrate(_ s: PostgresSession, model: String) throws -> [CacheMutation] {
        var out: [CacheMutation] = []
        let positions = try self.positions(s, model: model)
        out.append(.replaceHash(key: keys.positions(model: model), fields: positions.map { ($0.symbol, $0.json) }, ttlSeconds: ttl.positions))
        out.append(.replaceList(key: keys.recentTrades(model: model), values: try recentTrades(s, model: model), ttlSeconds: ttl.medium))
        if let json = try lastDecision(s, model: model) {
            out.append(.set(key: keys.lastDecision(model: model), value: json, ttlSeconds: ttl.medium))
        }
        if let (payload, since) = try analytics(s, model: model) {
            out.append(.set(key: keys.analytics(model: model), value: payload, ttlSeconds: ttl.analytics))
            out.append(.set(key: keys.sinceInception(model: model), value: since, ttlSeconds: ttl.long))
        }
        return out
    }

    /// The leaderboard sorted set replaced whole, plus its rendered cache.
    func hydrateLeaderboard(_ s: PostgresSession) throws -> [CacheMutation] {
        let board = try leaderboard(s)
        return [.replaceSortedSet(key: keys.leaderboard, members: board.members),
                .set(key: keys.leaderboardCache, value: board.rendered, ttlSeconds: ttl.medium)]
    }
}
