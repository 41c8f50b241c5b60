import EngineStoreWire

/// What engine code depends on. The live `EngineStoreClient` and the `InMemoryPersistence` fake both
/// conform, so a manager and its traders can be tested without a server. The calls that send a request
/// message as it is are generated from the RPC table (`PersistenceCalls`, Generated/ClientMethods.swift).
public protocol PersistenceService: PersistenceCalls {
    func health() async throws -> HealthResponse
    func openPositions(model: String) async throws -> GetOpenPositionsResponse
    func recentTrades(model: String, limit: Int) async throws -> GetRecentTradesResponse
    /// `not_found` when no state was ever saved for the trader.
    func traderState(trader: String) async throws -> TraderStateResponse
    /// `not_found` when no cycle was recorded for the model.
    func lastDecision(model: String) async throws -> LastDecision
    func leaderboard(limit: Int) async throws -> GetLeaderboardResponse
}
