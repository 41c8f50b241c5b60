import EngineStoreWire
import Hiredis

/// Position and trade reads through `CachedRead`. A cache key exists only when complete (writes
/// build a missing key from Postgres or leave it to the relay), so any existing key is a hit.
struct PositionReads {
    let context: ServiceContext

    func openPositions(model: String, reply: ReplyTarget) {
        let key = context.keys.positions(model: model)
        let (keys, ttl) = (context.keys, context.configuration.ttl.positions)
        CachedRead(context: context).run(reply, family: "positions", command: ["HGETALL", key], fromCache: { cached in
            guard let fields = cached.array, !fields.isEmpty, let positions = Self.decodePositions(fields) else { return nil }
            return GetOpenPositionsResponse(positions: positions, source: .cache).encodedPayload()
        }, fromPostgres: { session in
            let rows = try session.rows(PositionStore.OpenOfModel(model: model))
            let response = GetOpenPositionsResponse(positions: rows.map(\.snapshot), source: .postgres)
            let refill = rows.isEmpty ? [] : [PositionStore.refill(rows, model: model, keys: keys, ttl: ttl)]
            return JobOutcome(reply: response.encodedPayload(), cacheMutations: refill)
        })
    }

    func recentTrades(model: String, limit: Int, reply: ReplyTarget) {
        let key = context.keys.recentTrades(model: model)
        let (keys, ttl) = (context.keys, context.configuration.ttl.medium)
        CachedRead(context: context).run(reply, family: "recent_trades", command: ["LRANGE", key, "0", String(limit - 1)], fromCache: { cached in
            guard let items = cached.array, !items.isEmpty else { return nil }
            var trades: [TradeSnapshot] = []
            for item in items {
                guard let text = item.text, let trade = TradeRow.snapshot(document: text) else { return nil }
                trades.append(trade)
            }
            return GetRecentTradesResponse(trades: trades, source: .cache).encodedPayload()
        }, fromPostgres: { session in
            let rows = try session.rows(TradeStore.Recent(model: model))
            let response = GetRecentTradesResponse(trades: rows.prefix(limit).map(\.snapshot), source: .postgres)
            // Merged, never replaced: trades committed after this read stay in the list.
            let refill = rows.isEmpty ? [] : [TradeStore.merge(rows, model: model, keys: keys, mode: .build, ttl: ttl)]
            return JobOutcome(reply: response.encodedPayload(), cacheMutations: refill)
        })
    }

    /// HGETALL reply (field, value, field, value…) → positions; nil if any value is not position JSON.
    static func decodePositions(_ items: [RedisReply]) -> [PositionSnapshot]? {
        var out: [PositionSnapshot] = []
        var i = 0
        while i + 1 < items.count {
            guard let text = items[i + 1].text, let position = PositionRow.snapshot(document: text) else { return nil }
            out.append(position)
            i += 2
        }
        return out.sorted { $0.symbol < $1.symbol }
    }
}
