import EngineStoreWire
import Foundation
import LibPQ

/// Analytics and the leaderboard: UpdateAnalytics upserts `model_analytics` (a payload older than
/// the stored one never overwrites it) and refreshes `analytics:<m>`, `since_inception:<m>`, the
/// `leaderboard` sorted set (score = total_pnl_pct) and the pre-rendered `leaderboard:cache`.
struct AnalyticsRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.updateAnalytics, .getLeaderboard] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        switch method {
        case .updateAnalytics:
            let r = try UpdateAnalyticsRequest.decodeRequest(payload)
            try Validate.identifier(r.idempotencyKey, "idempotency_key")
            guard !r.entries.isEmpty else { throw .invalid("entries", "at least one entry") }
            guard r.entries.count <= 1000 else { throw .invalid("entries", "at most 1000 per call") }
            var models = Set<String>()
            var figures: [Figures] = []
            for e in r.entries {
                try Validate.identifier(e.modelID, "entries.model_id")
                guard models.insert(e.modelID).inserted else { throw .invalid("entries.model_id", "\(e.modelID) appears twice") }
                try Validate.timestampMs(e.serverTimeMs, "entries.server_time_ms")
                try Validate.jsonObject(e.metadataJSON, "entries.metadata_json")
                figures.append(try Figures(e.payloadJSON))
            }
            context.postgres.submit(IdempotentWrite(
                key: r.idempotencyKey, method: method.rawValue, digest: requestDigest(payload),
                body: UpdateAnalyticsBody(entries: r.entries, figures: figures, keys: context.keys, ttl: context.configuration.ttl),
                reply: reply))
        case .getLeaderboard:
            let r = try GetLeaderboardRequest.decodeRequest(payload)
            guard (1...1000).contains(r.limit) else { throw .invalid("limit", "must be 1 to 1000") }
            let key = context.keys.leaderboard
            CachedRead(context: context).run(reply, family: "leaderboard", command: ["ZREVRANGE", key, "0", String(r.limit - 1), "WITHSCORES"], fromCache: { cached in
                guard let items = cached.array, !items.isEmpty else { return nil }
                var entries: [LeaderboardEntry] = []
                var i = 0
                while i + 1 < items.count {
                    guard let model = items[i].text, let score = items[i + 1].text.flatMap(Double.init) else { return nil }
                    entries.append(LeaderboardEntry(modelID: model, score: score))
                    i += 2
                }
                return GetLeaderboardResponse(entries: entries, source: .cache).encodedPayload()
            }, fromPostgres: { session in
                let rows = try session.run(leaderboardRows, ["1000"])
                let all = (0..<rows.rowCount).map { LeaderboardEntry(modelID: rows.string($0, 0) ?? "", score: rows.double($0, 1) ?? 0) }
                let response = GetLeaderboardResponse(entries: Array(all.prefix(Int(r.limit))), source: .postgres)
                return JobOutcome(reply: response.encodedPayload(),
                                  cacheMutations: [.sortedSetAdd(key: key, members: all.map { ($0.score, $0.modelID) })])
            })
        default:
            throw ServiceError(.unimplemented, "\(method) is not implemented")
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

        /// DOMAIN.md `since_inception:<m>`: total_pnl_usd, total_pnl_pct, sharpe_ratio.
        var sinceInceptionJSON: String {
            var since = JSONObjectWriter()
            since.number("total_pnl_usd", totalPnlUSD)
            since.number("total_pnl_pct", totalPnlPct)
            since.number("sharpe_ratio", sharpeRatio)
            return since.finish()
        }
    }
}

private let upsertAnalytics = Statement(name: "analytics_upsert", sql: """
    INSERT INTO model_analytics (model_id, payload, server_time_ms, metadata)
    VALUES ($1, $2::jsonb, $3, COALESCE($4::jsonb, '{}'))
    ON CONFLICT (model_id) DO UPDATE SET payload = EXCLUDED.payload, server_time_ms = EXCLUDED.server_time_ms,
        metadata = COALESCE($4::jsonb, model_analytics.metadata), updated_at = now()
    WHERE model_analytics.server_time_ms <= EXCLUDED.server_time_ms
    RETURNING 1
    """)

/// Models ranked by total PnL %, best first (non-numeric scores last).
let leaderboardRows = Statement(name: "leaderboard_rows", sql: """
    SELECT model_id, CASE WHEN jsonb_typeof(payload->'total_pnl_pct') = 'number' THEN (payload->>'total_pnl_pct')::float8 END AS score
    FROM model_analytics ORDER BY score DESC NULLS LAST, model_id LIMIT $1
    """)

/// The pre-rendered leaderboard: a JSON array of {rank, model_id, total_pnl_pct, total_pnl_usd, sharpe_ratio,
/// win_rate, total_trades, max_drawdown_pct, server_time_ms}, top 100.
let renderLeaderboard = Statement(name: "leaderboard_render", sql: """
    SELECT COALESCE(json_agg(x ORDER BY x.rank), '[]')::text FROM (
        SELECT row_number() OVER (ORDER BY CASE WHEN jsonb_typeof(payload->'total_pnl_pct') = 'number'
                                            THEN (payload->>'total_pnl_pct')::float8 END DESC NULLS LAST, model_id) AS rank,
               model_id, payload->'total_pnl_pct' AS total_pnl_pct, payload->'total_pnl_usd' AS total_pnl_usd,
               payload->'sharpe_ratio' AS sharpe_ratio, payload->'win_rate' AS win_rate,
               payload->'total_trades' AS total_trades, payload->'max_drawdown_pct' AS max_drawdown_pct, server_time_ms
        FROM model_analytics ORDER BY rank LIMIT 100) x
    """)

struct UpdateAnalyticsBody: WriteBody {
    let entries: [ModelAnalytics]
    let figures: [AnalyticsRPC.Figures]
    let keys: CacheKeys
    let ttl: CacheTTL

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var mutations: [CacheMutation] = []
        var updated: UInt32 = 0
        var scores: [(Double, String)] = []
        for (e, f) in zip(entries, figures) {
            let r = try session.run(upsertAnalytics, [e.modelID, e.payloadJSON, String(e.serverTimeMs), e.metadataJSON])
            guard r.rowCount == 1 else { continue }  // an older payload than the stored one
            updated += 1
            mutations.append(.set(key: keys.analytics(model: e.modelID), value: e.payloadJSON, ttlSeconds: ttl.analytics))
            mutations.append(.set(key: keys.sinceInception(model: e.modelID), value: f.sinceInceptionJSON, ttlSeconds: ttl.long))
            scores.append((f.totalPnlPct, e.modelID))
        }
        if updated > 0 {
            // The whole ranking from Postgres, not just this call's models: a leaderboard lost in
            // Redis comes back complete with the next update.
            let all = try session.run(leaderboardRows, ["1000"])
            let members = (0..<all.rowCount).compactMap { i in all.double(i, 1).map { ($0, all.string(i, 0) ?? "") } }
            mutations.append(.sortedSetAdd(key: keys.leaderboard, members: members.isEmpty ? scores : members))
            let rendered = try session.run(renderLeaderboard, []).string(0, 0) ?? "[]"
            mutations.append(.set(key: keys.leaderboardCache, value: rendered, ttlSeconds: ttl.medium))
        }
        return JobOutcome(reply: UpdateAnalyticsResponse(updated: updated).encodedPayload(), cacheMutations: mutations,
                          outboxIDs: try Outbox.record(session, scores.map { .analytics(model: $0.1) }))
    }
}
