import EngineStoreWire

/// What engine code depends on. The live `EngineStoreClient` and the `InMemoryPersistence` fake both
/// conform, so a manager and its traders can be tested without a server.
public protocol PersistenceService: Sendable {
    func health() async throws -> HealthResponse
    /// Opens a position, or updates the open one for (model, symbol). Idempotent per key.
    func savePosition(_ request: SavePositionRequest) async throws -> SavePositionResponse
    /// Closes all (`exit_size` absent) or part of the open position; `not_found` if none is open.
    func closePosition(_ request: ClosePositionRequest) async throws -> ClosePositionResponse
    /// Stores a trade event once per trade id; a repeat answers `duplicate = true`.
    func publishTradeEvent(_ request: PublishTradeEventRequest) async throws -> PublishTradeEventResponse
    func openPositions(model: String) async throws -> GetOpenPositionsResponse
    func recentTrades(model: String, limit: Int) async throws -> GetRecentTradesResponse
    /// Equity snapshots with position marks; a snapshot within the minimum interval is answered `stored = false`.
    func saveSnapshots(_ request: SaveSnapshotRequest) async throws -> SaveSnapshotResponse
    func recordDecisionCycle(_ request: RecordDecisionCycleRequest) async throws -> RecordDecisionCycleResponse
    /// One prompt/response pair of the executor (nof0's ConversationRecorder).
    func recordConversation(_ request: RecordConversationRequest) async throws -> RecordConversationResponse
    func updateAnalytics(_ request: UpdateAnalyticsRequest) async throws -> UpdateAnalyticsResponse
    func saveTraderState(_ request: SaveTraderStateRequest) async throws -> TraderStateResponse
    /// `not_found` when no state was ever saved for the trader.
    func traderState(trader: String) async throws -> TraderStateResponse
    /// `not_found` when no cycle was recorded for the model.
    func lastDecision(model: String) async throws -> LastDecision
    func leaderboard(limit: Int) async throws -> GetLeaderboardResponse
    /// Market data: every tick is stored; latest prices only move forward in time.
    func ingestPriceTicks(_ request: IngestPriceTicksRequest) async throws -> IngestPriceTicksResponse
    func upsertMarketAssets(_ request: UpsertMarketAssetsRequest) async throws -> UpsertCountResponse
    func upsertAssetContexts(_ request: UpsertAssetContextsRequest) async throws -> UpsertCountResponse
}
