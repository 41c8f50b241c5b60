import EngineStoreWire
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
            let r = try UpdateAnalyticsRequest.decodeWrite(payload)
            guard !r.entries.isEmpty else { throw .invalid("entries", "at least one entry") }
            guard r.entries.count <= 1000 else { throw .invalid("entries", "at most 1000 per call") }
            var models = Set<String>()
            var figures: [AnalyticsStore.Figures] = []
            for e in r.entries {
                try Validate.keyPart(e.modelID, "entries.model_id")
                guard models.insert(e.modelID).inserted else { throw .invalid("entries.model_id", "\(e.modelID) appears twice") }
                try Validate.timestampMs(e.serverTimeMs, "entries.server_time_ms", maxSkewMs: skew)
                try Validate.jsonObject(e.metadataJSON, "entries.metadata_json")
                figures.append(try AnalyticsStore.Figures(e.payloadJSON))
            }
            context.submitWrite(r, method, payload: payload,
                body: UpdateAnalyticsBody(entries: r.entries, figures: figures, keys: context.keys, ttl: context.configuration.ttl),
                reply: reply)
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
}

struct UpdateAnalyticsBody: WriteBody {
    let keys: CacheKeys
    let ttl: CacheTTL
    /// Entries in `LockOrder`, sorted once (the reply only counts them).
    let ordered: [(ModelAnalytics, AnalyticsStore.Figures)]
    let lockKeys: [String]

    init(entries: [ModelAnalytics], figures: [AnalyticsStore.Figures], keys: CacheKeys, ttl: CacheTTL) {
        self.keys = keys
        self.ttl = ttl
        ordered = zip(entries, figures).sorted { LockOrder.analytics($0.0.modelID) < LockOrder.analytics($1.0.modelID) }
        lockKeys = ordered.map { LockOrder.analytics($0.0.modelID) }
    }


    func execute(_ session: PostgresSession) throws -> JobOutcome {
        var mutations: [CacheMutation] = []
        var models: [String] = []
        for (e, f) in ordered {
            // No row: an older payload than the stored one.
            guard let row = try session.first(AnalyticsStore.Upsert(entry: e)) else { continue }
            mutations += AnalyticsStore.mutations(model: e.modelID, payload: row.payload ?? e.payloadJSON, figures: f,
                                                  version: row.version, keys: keys, ttl: ttl)
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
