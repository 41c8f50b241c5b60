import EngineStoreWire
import Foundation
import Hiredis
import LibPQ

/// Position and trade reads through `CachedRead`. A cache key exists only when complete (writes
/// build a missing key from Postgres or leave it to the relay), so any existing key is a hit.
struct PositionReads {
    let context: ServiceContext

    func openPositions(model: String, reply: ReplyTarget) {
        let key = context.keys.positions(model: model)
        let versionKey = context.keys.version(of: key)
        let ttl = context.configuration.ttl.positions
        CachedRead(context: context).run(reply, family: "positions", command: ["HGETALL", key], fromCache: { cached in
            guard let fields = cached.array, !fields.isEmpty, let positions = Self.decodePositions(fields) else { return nil }
            return GetOpenPositionsResponse(positions: positions, source: .cache).encodedPayload()
        }, fromPostgres: { session in
            let r = try session.run(openPositionsOfModel, [model])
            let rows = (0..<r.rowCount).map { PositionRow(r, $0) }
            let response = GetOpenPositionsResponse(positions: rows.map(\.snapshot), source: .postgres)
            // Built only if still missing, each field under its version: a refill read before a
            // newer write can never replace what that write put there.
            let refill: [CacheMutation] = rows.isEmpty ? [] : [
                .positionsSync(key: key, versionKey: versionKey, open: rows.map { ($0.symbol, CacheVersion.of($0.version), $0.json) },
                               closed: [], mode: .build, ttlSeconds: ttl),
            ]
            return JobOutcome(reply: response.encodedPayload(), cacheMutations: refill)
        })
    }

    func recentTrades(model: String, limit: Int, reply: ReplyTarget) {
        let key = context.keys.recentTrades(model: model)
        let ttl = context.configuration.ttl.medium
        CachedRead(context: context).run(reply, family: "recent_trades", command: ["LRANGE", key, "0", String(limit - 1)], fromCache: { cached in
            guard let items = cached.array, !items.isEmpty, let trades = Self.decodeTrades(items) else { return nil }
            return GetRecentTradesResponse(trades: trades, source: .cache).encodedPayload()
        }, fromPostgres: { session in
            let r = try session.run(recentTradesOfModel, [model, "100"])
            let rows = (0..<r.rowCount).map { TradeRow(r, $0) }
            let response = GetRecentTradesResponse(trades: rows.prefix(limit).map(\.snapshot), source: .postgres)
            // Merged, never replaced: trades committed after this read stay in the list.
            let refill: [CacheMutation] = rows.isEmpty ? [] : [
                .tradesMerge(key: key, items: rows.map(\.json), maxLength: 100, mode: .build, ttlSeconds: ttl),
            ]
            return JobOutcome(reply: response.encodedPayload(), cacheMutations: refill)
        })
    }

    /// HGETALL reply (field, value, field, value…) → positions; nil if any value is not position JSON.
    static func decodePositions(_ items: [RedisReply]) -> [PositionSnapshot]? {
        var out: [PositionSnapshot] = []
        var i = 0
        while i + 1 < items.count {
            guard let text = items[i + 1].text, let o = jsonObject(text),
                  let symbol = o["symbol"] as? String, let side = o["side"] as? String,
                  let quantity = (o["quantity"] as? NSNumber)?.doubleValue,
                  let entry = (o["entry_price"] as? NSNumber)?.doubleValue else { return nil }
            out.append(PositionSnapshot(
                symbol: symbol, side: side == "short" ? .short : .long, quantity: quantity, entryPrice: entry,
                leverage: (o["leverage"] as? NSNumber)?.doubleValue, confidence: (o["confidence"] as? NSNumber)?.doubleValue,
                riskUSD: (o["risk_usd"] as? NSNumber)?.doubleValue, updatedAtMs: (o["updated_at_ms"] as? NSNumber)?.int64Value ?? 0,
                exchange: o["exchange"] as? String ?? ""))
            i += 2
        }
        return out.sorted { $0.symbol < $1.symbol }
    }

    static func decodeTrades(_ items: [RedisReply]) -> [TradeSnapshot]? {
        var out: [TradeSnapshot] = []
        for item in items {
            guard let text = item.text, let o = jsonObject(text), let symbol = o["symbol"] as? String else { return nil }
            func d(_ k: String) -> Double? { (o[k] as? NSNumber)?.doubleValue }
            func i(_ k: String) -> Int64 { (o[k] as? NSNumber)?.int64Value ?? 0 }
            out.append(TradeSnapshot(
                modelID: o["model_id"] as? String ?? "", symbol: symbol, side: (o["side"] as? String) == "short" ? .short : .long,
                quantity: d("quantity") ?? 0, entryPrice: d("entry_price") ?? 0, exitPrice: d("exit_price") ?? 0,
                realizedPnl: d("realized_pnl") ?? 0, confidence: d("confidence"), closedAtMs: i("closed_at_ms"),
                exchange: o["exchange"] as? String ?? "", entryTimeMs: i("entry_time_ms"), leverage: d("leverage"),
                positionSize: d("position_size") ?? 0))
        }
        return out
    }

    static func jsonObject(_ text: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }
}

/// A read-only statement outside any transaction.
struct ReadJob: PostgresJob {
    let deadlineNanos: UInt64
    let reply: ReplyTarget
    let body: @Sendable (PostgresSession) throws -> JobOutcome
    var isTransactional: Bool { false }
    var target: ReplyTarget? { reply }

    init(deadlineNanos: UInt64, reply: ReplyTarget, body: @escaping @Sendable (PostgresSession) throws -> JobOutcome) {
        self.deadlineNanos = deadlineNanos
        self.reply = reply
        self.body = body
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome { try body(session) }
    func complete(_ result: Result<JobOutcome, ServiceError>) { reply.complete(result) }
}
