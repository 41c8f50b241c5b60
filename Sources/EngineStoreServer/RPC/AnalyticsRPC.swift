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
        let skew = context.configuration.maxClockSkewMs
        switch method {
        case .updateAnalytics:
            let r = try UpdateAnalyticsRequest.decodeRequest(payload)
            try Validate.identifier(r.idempotencyKey, "idempotency_key")
            guard !r.entries.isEmpty else { throw .invalid("entries", "at least one entry") }
            guard r.entries.count <= 1000 else { throw .invalid("entries", "at most 1000 per call") }
            var models = Set<String>()
            var figures: [Figures] = []
            for e in r.entries {
                try Validate.keyPart(e.modelID, "entries.model_id")
                guard models.insert(e.modelID).inserted else { throw .invalid("entries.model_id", "\(e.modelID) appears twice") }
                try Validate.timestampMs(e.serverTimeMs, "entries.server_time_ms", maxSkewMs: skew)
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
            // The whole set (at most 1000 members): Redis orders equal scores by member descending,
            // Postgres by model id ascending; sorted here so both paths answer the same order.
            CachedRead(context: context).run(reply, family: "leaderboard", command: ["ZREVRANGE", key, "0", "-1", "WITHSCORES"], fromCache: { cached in
                guard let items = cached.array, !items.isEmpty else { return nil }
                var entries: [LeaderboardEntry] = []
                var i = 0
                while i + 1 < items.count {
                    guard let model = items[i].text, let score = items[i + 1].text.flatMap(Double.init) else { return nil }
                    entries.append(LeaderboardEntry(modelID: model, score: score))
                    i += 2
                }
                entries.sort { $0.score != $1.score ? $0.score > $1.score : $0.modelID.utf8.lexicographicallyPrecedes($1.modelID.utf8) }
                return GetLeaderboardResponse(entries: Array(entries.prefix(Int(r.limit))), source: .cache).encodedPayload()
            }, fromPostgres: { [keys = context.keys, ttl = context.configuration.ttl] session in
                let board = try LeaderboardState(session)
                let all = board.ranked.map { LeaderboardEntry(modelID: $0.1, score: $0.0) }
                let response = GetLeaderboardResponse(entries: Array(all.prefix(Int(r.limit))), source: .postgres)
                return JobOutcome(reply: response.encodedPayload(), cacheMutations: board.mutations(keys, ttl: ttl))
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

        /// The since-inception document of `since_inception:<m>` (proto-spec §10.12): total_pnl_usd, total_pnl_pct, sharpe_ratio.
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
        metadata = COALESCE($4::jsonb, model_analytics.metadata), updated_at = now(),
        cache_version = nextval('engine_store_cache_version')
    WHERE model_analytics.server_time_ms <= EXCLUDED.server_time_ms
    RETURNING cache_version
    """)

/// The leaderboard as of one snapshot: members by score, the rendered cache, and a version, the sum of
/// every row's cache_version. Rows only gain versions, so a later snapshot has a larger sum exactly when
/// something changed, and Redis keeps the newest leaderboard whatever order rebuilds arrive in.
let leaderboardState = Statement(name: "leaderboard_state", sql: """
    SELECT model_id, CASE WHEN jsonb_typeof(payload->'total_pnl_pct') = 'number' THEN (payload->>'total_pnl_pct')::float8 END AS score,
           (SELECT lpad(COALESCE(sum(cache_version), 0)::text, 20, '0') FROM model_analytics) AS version,
           (\(renderLeaderboardSQL)) AS rendered
    FROM model_analytics ORDER BY score DESC NULLS LAST, model_id COLLATE "C" LIMIT 1000
    """)

struct LeaderboardState {
    /// Models with a numeric score: the sorted set.
    var members: [(Double, String)] = []
    /// Every model in order, a non-numeric score last as 0 (GetLeaderboard from Postgres).
    var ranked: [(Double, String)] = []
    var rendered = "[]"
    var version = CacheVersion.of(0)

    init(_ session: PostgresSession) throws {
        let r = try session.run(leaderboardState, [])
        members = (0..<r.rowCount).compactMap { i in r.double(i, 1).map { ($0, r.string(i, 0) ?? "") } }
        ranked = (0..<r.rowCount).map { i in (r.double(i, 1) ?? 0, r.string(i, 0) ?? "") }
        if r.rowCount > 0 {
            version = r.string(0, 2) ?? version
            rendered = r.string(0, 3) ?? rendered
        }
    }

    /// The sorted set and its rendered cache, both under this version.
    func mutations(_ keys: CacheKeys, ttl: CacheTTL) -> [CacheMutation] {
        [.leaderboardReplace(key: keys.leaderboard, versionKey: keys.version(of: keys.leaderboard), members: members, version: version),
         .versionedSet(key: keys.leaderboardCache, versionKey: keys.version(of: keys.leaderboardCache), value: rendered,
                       version: version, ttlSeconds: ttl.medium)]
    }
}

/// The pre-rendered leaderboard: a JSON array of {rank, model_id, total_pnl_pct, total_pnl_usd, sharpe_ratio,
/// win_rate, total_trades, max_drawdown_pct, server_time_ms}, top 100.
let renderLeaderboardSQL = """
    SELECT COALESCE(json_agg(x ORDER BY x.rank), '[]')::text FROM (
        SELECT row_number() OVER (ORDER BY CASE WHEN jsonb_typeof(payload->'total_pnl_pct') = 'number'
                                            THEN (payload->>'total_pnl_pct')::float8 END DESC NULLS LAST, model_id COLLATE "C") AS rank,
               model_id, payload->'total_pnl_pct' AS total_pnl_pct, payload->'total_pnl_usd' AS total_pnl_usd,
               payload->'sharpe_ratio' AS sharpe_ratio, payload->'win_rate' AS win_rate,
               payload->'total_trades' AS total_trades, payload->'max_drawdown_pct' AS max_drawdown_pct, server_time_ms
        FROM model_analytics ORDER BY rank LIMIT 100) x
    """

struct UpdateAnalyticsBody: WriteBody {
    let keys: CacheKeys
    let ttl: CacheTTL
    /// Entries in `LockOrder`, sorted once (the reply only counts them).
    let ordered: [(ModelAnalytics, AnalyticsRPC.Figures)]
    let lockKeys: [String]

    init(entries: [ModelAnalytics], figures: [AnalyticsRPC.Figures], keys: CacheKeys, ttl: CacheTTL) {
        self.keys = keys
        self.ttl = ttl
        ordered = zip(entries, figures).sorted { LockOrder.analytics($0.0.modelID) < LockOrder.analytics($1.0.modelID) }
        lockKeys = ordered.map { LockOrder.analytics($0.0.modelID) }
    }


    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var mutations: [CacheMutation] = []
        var models: [String] = []
        for (e, f) in ordered {
            let r = try session.run(upsertAnalytics, [e.modelID, e.payloadJSON, String(e.serverTimeMs), e.metadataJSON])
            guard r.rowCount == 1 else { continue }  // an older payload than the stored one
            let version = CacheVersion.of(r.int(0, 0) ?? 0)
            let analyticsKey = keys.analytics(model: e.modelID), sinceKey = keys.sinceInception(model: e.modelID)
            mutations.append(.versionedSet(key: analyticsKey, versionKey: keys.version(of: analyticsKey), value: e.payloadJSON,
                                           version: version, ttlSeconds: ttl.analytics))
            mutations.append(.versionedSet(key: sinceKey, versionKey: keys.version(of: sinceKey), value: f.sinceInceptionJSON,
                                           version: version, ttlSeconds: ttl.long))
            models.append(e.modelID)
        }
        var outcome = JobOutcome(reply: UpdateAnalyticsResponse(updated: UInt32(models.count)).encodedPayload(),
                                 cacheMutations: mutations,
                                 outboxIDs: try Outbox.record(session, models.map { .analytics(model: $0) }))
        // The leaderboard spans every model, so only a snapshot taken after this commit is complete:
        // the relay builds it (versioned by LeaderboardState) right after the commit.
        if !models.isEmpty { outcome.relayOutboxIDs = try Outbox.record(session, [.leaderboard]) }
        return outcome
    }
}
