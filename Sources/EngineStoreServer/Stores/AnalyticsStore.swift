import EngineStoreWire
import Foundation
import LibPQ

/// Model analytics (SQL/analytics.sql): `analytics:<m>` (the payload as stored), `since_inception:<m>`,
/// and the leaderboard built from every model's row.
enum AnalyticsStore {
    /// Upserts one entry; returns the row's payload and new cache version, or nothing when the stored
    /// payload is newer.
    struct Upsert: PGStatement {
        static let sql = SQLText.analyticsUpsert
        let entry: ModelAnalytics
        var bindings: [String?] { [entry.modelID, entry.payloadJSON, String(entry.serverTimeMs), entry.metadataJSON] }
        static func decode(_ r: PGRow) -> (payload: String?, version: Int64) { OfModel.decode(r) }
    }

    struct OfModel: PGStatement {
        static let sql = SQLText.analyticsOfModel
        let model: String
        var bindings: [String?] { [model] }
        static func decode(_ r: PGRow) -> (payload: String?, version: Int64) { (r.string("payload"), r.int("cache_version") ?? 0) }
    }

    /// The leaderboard rows (see SQL `leaderboard_state`).
    struct Leaderboard: PGStatement {
        struct Row {
            var model: String
            var score: Double?
            var version, rendered: String?
        }
        static let sql = SQLText.leaderboardState
        var bindings: [String?] { [] }
        static func decode(_ r: PGRow) -> Row {
            Row(model: r.string("model_id") ?? "", score: r.double("score"), version: r.string("version"), rendered: r.string("rendered"))
        }
    }

    /// The figures the caches need, read from the payload JSON.
    struct Figures: Sendable {
        var totalPnlPct: Double
        var totalPnlUSD: Double?
        var sharpeRatio: Double?

        init(_ json: String) throws(ServiceError) {
            try Validate.jsonObject(json, "entries.payload_json")
            guard let o = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else {
                throw .invalid("entries.payload_json", "must be a JSON object")
            }
            guard let pct = o.double("total_pnl_pct"), pct.isFinite else {
                throw .invalid("entries.payload_json", "needs a numeric total_pnl_pct (the leaderboard score)")
            }
            totalPnlPct = pct
            totalPnlUSD = o.double("total_pnl_usd")
            sharpeRatio = o.double("sharpe_ratio")
        }

        /// The since-inception document of `since_inception:<m>` (proto-spec §10.12): total_pnl_usd, total_pnl_pct, sharpe_ratio.
        var sinceInceptionJSON: String {
            var since = JSONObjectWriter()
            since.number("total_pnl_usd", totalPnlUSD)
            since.number("total_pnl_pct", totalPnlPct)
            since.number("sharpe_ratio", sharpeRatio)
            return since.finish()
        }
    }

    /// analytics:<model> (the payload) and since_inception:<model>, under the row's version: the one
    /// place both documents are made, for the direct path and for rebuilds.
    static func mutations(model: String, payload: String, figures: Figures?, version: Int64, keys: CacheKeys,
                          ttl: CacheTTL) -> [CacheMutation] {
        let v = CacheVersion.of(version)
        let a = keys.analytics(model: model), b = keys.sinceInception(model: model)
        return [.versionedSet(key: a, versionKey: keys.version(of: a), value: payload, version: v, ttlSeconds: ttl.analytics),
                .versionedSet(key: b, versionKey: keys.version(of: b), value: figures?.sinceInceptionJSON ?? "{}", version: v,
                              ttlSeconds: ttl.long)]
    }

    /// Both documents of `model` rebuilt from its row (none when it has no row).
    static func rebuild(_ s: PostgresSession, model: String, keys: CacheKeys, ttl: CacheTTL) throws -> [CacheMutation] {
        guard let row = try s.first(OfModel(model: model)), let payload = row.payload else { return [] }
        return mutations(model: model, payload: payload, figures: try? Figures(payload), version: row.version, keys: keys, ttl: ttl)
    }
}

/// The leaderboard as of one snapshot: members by score, the rendered cache, and a version, the sum of
/// every row's cache_version. Rows only gain versions, so a later snapshot has a larger sum exactly when
/// something changed, and Redis keeps the newest leaderboard whatever order rebuilds arrive in.
struct LeaderboardState {
    /// Models with a numeric score: the sorted set.
    var members: [(Double, String)] = []
    /// Every model in order, a non-numeric score last as 0 (GetLeaderboard from Postgres).
    var ranked: [(Double, String)] = []
    var rendered = "[]"
    var version = CacheVersion.of(0)

    init(_ session: PostgresSession) throws {
        let rows = try session.rows(AnalyticsStore.Leaderboard())
        members = rows.compactMap { row in row.score.map { ($0, row.model) } }
        ranked = rows.map { ($0.score ?? 0, $0.model) }
        if let first = rows.first {
            version = first.version ?? version
            rendered = first.rendered ?? rendered
        }
    }

    /// The sorted set and its rendered cache, both under this version.
    func mutations(_ keys: CacheKeys, ttl: CacheTTL) -> [CacheMutation] {
        [.leaderboardReplace(key: keys.leaderboard, versionKey: keys.version(of: keys.leaderboard), members: members, version: version),
         .versionedSet(key: keys.leaderboardCache, versionKey: keys.version(of: keys.leaderboardCache), value: rendered,
                       version: version, ttlSeconds: ttl.medium)]
    }
}
