import EngineStoreWire
import Foundation
import Synchronization

/// How the client reaches the server and how patient it is.
public struct ClientConfiguration: Sendable {
    public var socketPath: String
    /// Deadline of a call when the caller gives none; retries happen inside it.
    public var defaultTimeout: Duration = .seconds(5)
    public var clientName: String = "engine-store-client"

    public init(socketPath: String) { self.socketPath = socketPath }
}

/// The live client: async calls over one pipelined connection, reconnecting after a break and
/// retrying retryable failures with the same idempotency key until the call's deadline.
public final class EngineStoreClient: PersistenceService {
    public let configuration: ClientConfiguration
    private let connector: Connector
    /// The live session, readable without an actor hop; the connector replaces it after a break.
    private let current = Mutex<Connector.Session?>(nil)

    public init(configuration: ClientConfiguration) {
        self.configuration = configuration
        self.connector = Connector(configuration: configuration)
    }

    public convenience init(socketPath: String) {
        self.init(configuration: ClientConfiguration(socketPath: socketPath))
    }

    /// Connects and handshakes now (calls do it lazily otherwise). Returns the server's HelloOk.
    @discardableResult
    public func connect() async throws -> HelloResponse {
        try await connector.connection().hello
    }

    public func close() async {
        current.withLock { $0 = nil }
        await connector.close()
    }

    public func health(timeout: Duration? = nil) async throws -> HealthResponse {
        try await call(.health, HealthRequest(), timeout: timeout)
    }

    public func health() async throws -> HealthResponse { try await health(timeout: nil) }

    /// A no-op round trip (the server answers without touching Postgres or Redis).
    public func ping(_ payload: [UInt8] = []) async throws -> [UInt8] {
        let r: PingMessage = try await call(.ping, PingMessage(payload: payload), timeout: nil)
        return r.payload
    }

    /// Opens or updates a position. An empty idempotency key gets a fresh one, reused on retries.
    public func savePosition(_ request: SavePositionRequest) async throws -> SavePositionResponse {
        try await write(.savePosition, request)
    }

    /// Closes all or part of the open position. `not_found` when nothing is open.
    public func closePosition(_ request: ClosePositionRequest) async throws -> ClosePositionResponse {
        try await write(.closePosition, request)
    }

    public func publishTradeEvent(_ request: PublishTradeEventRequest) async throws -> PublishTradeEventResponse {
        try await write(.publishTradeEvent, request)
    }

    public func openPositions(model: String) async throws -> GetOpenPositionsResponse {
        try await call(.getOpenPositions, GetOpenPositionsRequest(modelID: model), timeout: nil)
    }

    public func recentTrades(model: String, limit: Int = 20) async throws -> GetRecentTradesResponse {
        try await call(.getRecentTrades, GetRecentTradesRequest(modelID: model, limit: UInt32(clamping: limit)), timeout: nil)
    }

    /// Stores equity snapshots (one per trader) and applies their position marks; throttled per trader.
    public func saveSnapshots(_ request: SaveSnapshotRequest) async throws -> SaveSnapshotResponse {
        try await write(.saveSnapshot, request)
    }

    public func recordDecisionCycle(_ request: RecordDecisionCycleRequest) async throws -> RecordDecisionCycleResponse {
        try await write(.recordDecisionCycle, request)
    }

    /// Stores one prompt/response pair (nof0's executor ConversationRecord) and its messages.
    public func recordConversation(_ request: RecordConversationRequest) async throws -> RecordConversationResponse {
        try await write(.recordConversation, request)
    }

    public func updateAnalytics(_ request: UpdateAnalyticsRequest) async throws -> UpdateAnalyticsResponse {
        try await write(.updateAnalytics, request)
    }

    public func saveTraderState(_ request: SaveTraderStateRequest) async throws -> TraderStateResponse {
        try await write(.saveTraderState, request)
    }

    public func traderState(trader: String) async throws -> TraderStateResponse {
        try await call(.getTraderState, GetTraderStateRequest(traderID: trader), timeout: nil)
    }

    public func lastDecision(model: String) async throws -> LastDecision {
        try await call(.getLastDecision, GetLastDecisionRequest(modelID: model), timeout: nil)
    }

    public func leaderboard(limit: Int) async throws -> GetLeaderboardResponse {
        try await call(.getLeaderboard, GetLeaderboardRequest(limit: UInt32(clamping: limit)), timeout: nil)
    }

    /// Stores a batch of ticks (one COPY) and advances latest prices. One idempotency key per batch.
    public func ingestPriceTicks(_ request: IngestPriceTicksRequest) async throws -> IngestPriceTicksResponse {
        try await write(.ingestPriceTicks, request)
    }

    public func upsertMarketAssets(_ request: UpsertMarketAssetsRequest) async throws -> UpsertCountResponse {
        try await write(.upsertMarketAssets, request)
    }

    public func upsertAssetContexts(_ request: UpsertAssetContextsRequest) async throws -> UpsertCountResponse {
        try await write(.upsertAssetContexts, request)
    }

    /// The service's metrics (Prometheus text format).
    public func stats() async throws -> String {
        let r: StatsResponse = try await call(.stats, StatsRequest(), timeout: nil)
        return r.prometheusText
    }

    /// Rebuilds Redis from Postgres for every model (or the given ones). `ran` is false when another
    /// instance was already hydrating.
    public func hydrate(_ request: HydrateRequest = HydrateRequest(), timeout: Duration = .seconds(120)) async throws -> HydrateResponse {
        try await call(.hydrate, request, timeout: timeout)
    }

    /// Compares Postgres with Redis (and with exchange positions you supply); optionally repairs the cache.
    public func checkConsistency(_ request: CheckConsistencyRequest, timeout: Duration = .seconds(120)) async throws -> CheckConsistencyResponse {
        try await call(.checkConsistency, request, timeout: timeout)
    }

    /// A write: an empty idempotency key gets a fresh one, which every retry of this call reuses.
    private func write<Request: IdempotentRequest, Response: WireMessage>(_ method: Method, _ request: Request) async throws -> Response {
        var r = request
        if r.idempotencyKey.isEmpty { r.idempotencyKey = UUID().uuidString.lowercased() }
        return try await call(method, r, timeout: nil)
    }

    /// Sends one request; retries retryable errors (same payload, so the same idempotency key) with
    /// backoff while the deadline allows.
    public func call<Request: WireMessage, Response: WireMessage>(
        _ method: Method, _ request: Request, timeout: Duration?
    ) async throws -> Response {
        let deadline = monotonicNanos() + (timeout ?? configuration.defaultTimeout).nanoseconds
        let payload = request.encodedPayload()
        var attempt = 0
        var backoffMs: UInt64 = 10
        while true {
            let error: EngineStoreError
            do {
                let session: Connector.Session
                if let live = current.withLock({ $0 }), !live.connection.isBroken {
                    session = live
                } else {
                    session = try await connector.connection()
                    current.withLock { $0 = session }
                }
                let reply = try await session.connection.request(
                    method: method.rawValue, payload: payload, deadlineNanos: deadline,
                    flags: attempt > 0 ? .retry : [])
                switch reply.header.kind {
                case .response:
                    do { return try Response(payload: reply.payload) } catch {
                        throw EngineStoreError(code: .protocolError, message: "bad \(method) response: \(error)", retryable: false)
                    }
                case .error:
                    let payload = try ErrorPayload(payload: reply.payload)
                    throw EngineStoreError(payload: payload)
                default:
                    throw EngineStoreError(code: .protocolError, message: "unexpected frame kind \(reply.header.kind)", retryable: false)
                }
            } catch let e as EngineStoreError {
                error = e
            } catch let e as WireError {
                error = EngineStoreError(code: .protocolError, message: "\(e)", retryable: false)
            }
            if error.code == .unavailable || error.code == .shuttingDown || error.code == .protocolError {
                current.withLock { if $0?.connection.isBroken == true { $0 = nil } }
                await connector.invalidate()
            }
            attempt += 1
            let now = monotonicNanos()
            guard error.retryable, error.code != .deadlineExceeded || now < deadline,
                  now + backoffMs * 1_000_000 < deadline else { throw error }
            try? await Task.sleep(for: .milliseconds(backoffMs))
            backoffMs = min(backoffMs * 2, 500)
        }
    }
}

/// Owns the current connection; concurrent callers share one connect-and-handshake.
actor Connector {
    struct Session: Sendable {
        let connection: ClientConnection
        let hello: HelloResponse
    }

    let configuration: ClientConfiguration
    private var current: Session?
    private var connecting: Task<Session, any Error>?

    init(configuration: ClientConfiguration) { self.configuration = configuration }

    func connection() async throws -> Session {
        if let current, !current.connection.isBroken { return current }
        if let connecting { return try await connecting.value }
        let configuration = self.configuration
        let task = Task { () throws -> Session in
            let c = try await ClientConnection.open(socketPath: configuration.socketPath)
            let deadline = monotonicNanos() + configuration.defaultTimeout.nanoseconds
            let reply = try await c.request(method: Method.hello.rawValue,
                                            payload: HelloRequest(minVersion: 1, maxVersion: 1, clientName: configuration.clientName).encodedPayload(),
                                            deadlineNanos: deadline)
            guard reply.header.kind == .response else {
                c.shutdown()
                let e = (try? ErrorPayload(payload: reply.payload)).map(EngineStoreError.init(payload:))
                throw e ?? EngineStoreError.connection("handshake failed")
            }
            let hello = try HelloResponse(payload: reply.payload)
            c.maxFrameBytes.store(hello.maxFrameBytes, ordering: .relaxed)
            return Session(connection: c, hello: hello)
        }
        connecting = task
        defer { connecting = nil }
        let session = try await task.value
        current = session
        return session
    }

    func invalidate() {
        if let current, current.connection.isBroken { self.current = nil }
    }

    func close() {
        current?.connection.shutdown()
        current = nil
    }
}

extension Duration {
    var nanoseconds: UInt64 {
        let (s, atto) = components
        return UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, atto)) / 1_000_000_000
    }
}

/// Write requests: they carry the idempotency key that makes retries exactly-once.
protocol IdempotentRequest: WireMessage {
    var idempotencyKey: String { get set }
}

extension SavePositionRequest: IdempotentRequest {}
extension ClosePositionRequest: IdempotentRequest {}
extension PublishTradeEventRequest: IdempotentRequest {}
extension SaveSnapshotRequest: IdempotentRequest {}
extension RecordDecisionCycleRequest: IdempotentRequest {}
extension RecordConversationRequest: IdempotentRequest {}
extension UpdateAnalyticsRequest: IdempotentRequest {}
extension SaveTraderStateRequest: IdempotentRequest {}
extension IngestPriceTicksRequest: IdempotentRequest {}
extension UpsertMarketAssetsRequest: IdempotentRequest {}
extension UpsertAssetContextsRequest: IdempotentRequest {}
