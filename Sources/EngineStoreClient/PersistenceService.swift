import EngineStoreWire

/// What engine code depends on. The live `EngineStoreClient` and the `InMemoryPersistence` fake both
/// conform, so a manager and its traders can be tested without a server.
public protocol PersistenceService: Sendable {
    func health() async throws -> HealthResponse
    /// Opens a position, or updates the open one for (model, symbol). Idempotent per key.
    func savePosition(_ request: SavePositionRequest) async throws -> SavePositionResponse
}
