import EngineStoreWire
import Foundation

/// Snapshots, decision cycles, conversations, analytics and trader state of the in-memory fake.
extension InMemoryPersistence {
    public func saveSnapshots(_ request: SaveSnapshotRequest) async throws -> SaveSnapshotResponse {
        try once(request) { r in
            var results: [SnapshotResult] = []
            for s in r.snapshots {
                var applied: UInt32 = 0
                for m in s.marks {
                    if let i = openIndex(model: s.modelID, symbol: m.symbol.uppercased()) {
                        positions[i].request.currentPrice = m.currentPrice
                        positions[i].request.unrealizedPnl = m.unrealizedPnl ?? positions[i].request.unrealizedPnl
                        applied += 1
                    }
                }
                let last = snapshots.filter { $0.modelID == s.modelID }.map(\.timestampMs).max()
                let throttled = last.map { $0 != s.timestampMs && snapshotMinIntervalMs > 0 && abs(s.timestampMs - $0) < snapshotMinIntervalMs } ?? false
                if !throttled {
                    snapshots.removeAll { $0.modelID == s.modelID && $0.timestampMs == s.timestampMs }
                    snapshots.append(s)
                }
                results.append(SnapshotResult(modelID: s.modelID, stored: !throttled,
                                              lastStoredMs: throttled ? last! : max(last ?? s.timestampMs, s.timestampMs), marksApplied: applied))
            }
            return SaveSnapshotResponse(results: results)
        }
    }

    public func recordDecisionCycle(_ request: RecordDecisionCycleRequest) async throws -> RecordDecisionCycleResponse {
        try once(request) { r in
            clock += 1
            decisions.append(r)
            return RecordDecisionCycleResponse(id: Int64(decisions.count), executedAtMs: r.executedAtMs ?? clock)
        }
    }

    public func recordConversation(_ request: RecordConversationRequest) async throws -> RecordConversationResponse {
        try once(request) { r in
            guard !r.prompt.isEmpty else { throw invalid("prompt", "must not be empty") }
            clock += 1
            conversations.append(r)
            return RecordConversationResponse(conversationID: Int64(conversations.count), timestampMs: r.timestampMs ?? clock)
        }
    }

    public func updateAnalytics(_ request: UpdateAnalyticsRequest) async throws -> UpdateAnalyticsResponse {
        try once(request) { r in
            var updated: UInt32 = 0
            for e in r.entries where (analytics[e.modelID]?.serverTimeMs ?? .min) <= e.serverTimeMs {
                analytics[e.modelID] = e
                updated += 1
            }
            return UpdateAnalyticsResponse(updated: updated)
        }
    }

    public func saveTraderState(_ request: SaveTraderStateRequest) async throws -> TraderStateResponse {
        try once(request) { r in
            let s = r.state
            var stored = traderStates[s.traderID] ?? TraderState(traderID: s.traderID)
            if traderStates[s.traderID] == nil, s.exchangeProvider == nil || s.marketProvider == nil {
                throw invalid("state.exchange_provider", "required for a new trader")
            }
            stored.exchangeProvider = s.exchangeProvider ?? stored.exchangeProvider
            stored.marketProvider = s.marketProvider ?? stored.marketProvider
            stored.allocationPct = s.allocationPct ?? stored.allocationPct
            stored.cooldownJSON = s.cooldownJSON ?? stored.cooldownJSON
            stored.riskGuardsJSON = s.riskGuardsJSON ?? stored.riskGuardsJSON
            stored.lastDecisionAtMs = s.lastDecisionAtMs ?? stored.lastDecisionAtMs
            stored.pauseUntilMs = s.pauseUntilMs ?? stored.pauseUntilMs
            clock += 1
            stored.updatedAtMs = clock
            traderStates[s.traderID] = stored
            return TraderStateResponse(state: stored, source: .postgres)
        }
    }

    public func traderState(trader: String) async throws -> TraderStateResponse {
        guard let s = traderStates[trader] else { throw notFound("no state stored for trader \(trader)") }
        return TraderStateResponse(state: s, source: .cache)
    }

    public func lastDecision(model: String) async throws -> LastDecision {
        guard let d = decisions.last(where: { $0.modelID == model }) else {
            throw notFound("no decision cycle recorded for \(model)")
        }
        return LastDecision(modelID: model, success: d.success, timestampMs: d.executedAtMs ?? clock, symbol: nil,
                            action: nil, confidence: nil, error: d.errorMessage, source: .cache)
    }

    public func leaderboard(limit: Int) async throws -> GetLeaderboardResponse {
        let entries = analytics.values.compactMap { a -> LeaderboardEntry? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(a.payloadJSON.utf8)) as? [String: Any],
                  let pct = (o["total_pnl_pct"] as? NSNumber)?.doubleValue else { return nil }
            return LeaderboardEntry(modelID: a.modelID, score: pct)
        }.sorted { ($0.score, $1.modelID) > ($1.score, $0.modelID) }
        return GetLeaderboardResponse(entries: Array(entries.prefix(limit)), source: .cache)
    }
}
