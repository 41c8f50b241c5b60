import EngineStoreWire
import Foundation

/// An in-memory `PersistenceService` with the server's semantics, for engine unit tests:
/// one open position per (model, SYMBOL), partial updates, required open fields, idempotency keys
/// (the same key returns the first answer; the same key with another request is a conflict).
/// The calls are in one extension file per family (InMemoryPersistence+<Family>.swift).
public actor InMemoryPersistence: PersistenceService {
    public struct StoredPosition: Sendable, Equatable {
        public var id: String
        public var request: SavePositionRequest
        public var status: String
    }

    public internal(set) var positions: [StoredPosition] = []
    public internal(set) var trades: [TradeSnapshot] = []
    public internal(set) var tradeEvents: [PublishTradeEventRequest] = []
    public internal(set) var snapshots: [AccountSnapshot] = []
    public internal(set) var decisions: [RecordDecisionCycleRequest] = []
    public internal(set) var conversations: [RecordConversationRequest] = []
    public internal(set) var analytics: [String: ModelAnalytics] = [:]
    public internal(set) var traderStates: [String: TraderState] = [:]
    public internal(set) var ticks: [PriceTick] = []
    /// Newest price per "provider|SYMBOL".
    public internal(set) var latestPrices: [String: PriceTick] = [:]
    /// Minimum interval between two stored snapshots of one trader, as the server's default.
    public var snapshotMinIntervalMs: Int64 = 300_000
    /// The first answer per idempotency key, with the request it answered (any write method).
    private var replies: [String: (request: any Sendable, response: any Sendable)] = [:]
    /// Stands in for the server's clock: writes advance it by one millisecond.
    var clock: Int64 = 1_700_000_000_000

    public init() {}

    public func setSnapshotMinInterval(ms: Int64) { snapshotMinIntervalMs = ms }

    public func health() async throws -> HealthResponse {
        HealthResponse(status: .ok, postgres: ComponentHealth(ok: true, latencyMicros: 0),
                       redis: ComponentHealth(ok: true, latencyMicros: 0), uptimeMs: 0, openConnections: 1,
                       instanceID: "in-memory", serverVersion: "fake")
    }

    /// Open positions of a model, as the server's hash would hold them.
    public func openPositions(model: String) -> [StoredPosition] {
        positions.filter { $0.status == "open" && $0.request.modelID == model }
    }

    /// Runs a write once per idempotency key (§9): an empty key gets a fresh one; a repeat of the
    /// same request answers the first response without running `write` again; another request (or
    /// another method) under a used key is a conflict. A write that throws records nothing.
    func once<Request: IdempotentRequest, Response: Sendable>(
        _ request: Request, _ write: (Request) throws -> Response
    ) throws -> Response {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString }
        if let (previous, response) = replies[r.idempotencyKey] {
            guard previous as? Request == r, let response = response as? Response else {
                throw EngineStoreError(code: .conflict, message: "idempotency key reused with a different request", retryable: false)
            }
            return response
        }
        let response = try write(r)
        replies[r.idempotencyKey] = (r, response)
        return response
    }

    /// Index of the open position of (model, symbol); `symbol` is already upper-cased.
    func openIndex(model: String, symbol: String) -> Int? {
        positions.firstIndex { $0.status == "open" && $0.request.modelID == model && $0.request.symbol == symbol }
    }

    func invalid(_ field: String, _ reason: String) -> EngineStoreError {
        EngineStoreError(code: .invalidArgument, message: "\(field): \(reason)", retryable: false, field: field)
    }

    func notFound(_ message: String) -> EngineStoreError {
        EngineStoreError(code: .notFound, message: message, retryable: false)
    }
}
