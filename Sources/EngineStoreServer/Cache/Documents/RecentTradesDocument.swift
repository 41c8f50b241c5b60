import EngineStoreWire
import Foundation
import Hiredis
import LibPQ

/// `trades:recent:<model>`, a model's newest closed trades, newest first (ClosePosition).
struct RecentTradesDocument: ModelListDocument {
    static let kind = "recent_trades"

    func key(_ keys: CacheKeys, model: String) -> String { keys.recentTrades(model: model) }

    func merge(_ s: PostgresSession, model: String, drop: [String], _ rebuilder: CacheRebuilder) throws -> CacheMutation {
        TradeStore.merge(try s.rows(TradeStore.Recent(model: model)), model: model, keys: rebuilder.keys, mode: .build,
                         ttl: rebuilder.ttl.medium, drop: drop)
    }

    func unknown(_ list: [String], _ s: PostgresSession) throws -> [String] {
        let ids = list.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            .compactMap { $0["id"] as? String }
        guard !ids.isEmpty else { return [] }
        let known = Set(try s.rows(TradeStore.Existing(ids: ids)))
        return ids.filter { !known.contains($0) }
    }

    func expected(_ s: PostgresSession, model: String) throws -> [String] { try s.rows(TradeStore.Recent(model: model)).map(\.json) }

    func matches(_ cached: [String], _ expected: [String]) -> Bool {
        cached.count == expected.count && !zip(cached, expected).contains(where: { !sameJSON($0, $1) })
    }

    func describe(_ list: [String]) -> String { "[" + list.joined(separator: ",") + "]" }
}

extension CacheKeys {
    func recentTrades(model: String) -> String { namespace + "trades:recent:" + model }
}

extension OutboxIntent {
    static func recentTrades(model: String) -> OutboxIntent { RecentTradesDocument.intent(model) }
}
