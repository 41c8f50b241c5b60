import EngineStoreWire
import Foundation
import Synchronization

/// How the client reaches the server and how patient it is.
public struct ClientConfiguration: Sendable {
    public var socketPath: String
    /// Deadline of a call when the caller gives none; retries happen inside it.
    public var defaultTimeout: Duration = .seconds(5)
    public var clientName: String = "engine-store-client"
    /// The I/O thread of the connection. Tasks that prefer this loop as their executor run on it and
    /// are resumed there without a thread hop (see `ClientEventLoop`).
    public var eventLoop: ClientEventLoop = .shared

    public init(socketPath: String) { self.socketPath = socketPath }
}

/// The live client: async calls over one pipelined connection, reconnecting after a break and
/// retrying retryable failures with the same idempotency key until the call's deadline.
public final class EngineStoreClient: PersistenceService {
    public let configuration: ClientConfiguration
    private let connector: Connector
    /// The live connection, readable without an actor hop; the connector replaces it after a break.
    /// (The connection alone, not its session: copying the handshake's strings cost a retain and a
    /// release each per call.)
    private let current = Mutex<ClientConnection?>(nil)

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
        try await call(RPC.health, HealthRequest(), timeout: timeout)
    }

    public func health() async throws -> HealthResponse { try await health(timeout: nil) }

    /// A no-op round trip (the server answers without touching Postgres or Redis).
    public func ping(_ payload: [UInt8] = []) async throws -> [UInt8] {
        let r: PingMessage = try await call(RPC.ping, PingMessage(payload: payload))
        return r.payload
    }

    public func openPositions(model: String) async throws -> GetOpenPositionsResponse {
        try await call(RPC.getOpenPositions, GetOpenPositionsRequest(modelID: model))
    }

    public func recentTrades(model: String, limit: Int = 20) async throws -> GetRecentTradesResponse {
        try await call(RPC.getRecentTrades, GetRecentTradesRequest(modelID: model, limit: UInt32(clamping: limit)))
    }

    public func traderState(trader: String) async throws -> TraderStateResponse {
        try await call(RPC.getTraderState, GetTraderStateRequest(traderID: trader))
    }

    public func lastDecision(model: String) async throws -> LastDecision {
        try await call(RPC.getLastDecision, GetLastDecisionRequest(modelID: model))
    }

    public func leaderboard(limit: Int) async throws -> GetLeaderboardResponse {
        try await call(RPC.getLeaderboard, GetLeaderboardRequest(limit: UInt32(clamping: limit)))
    }

    /// The service's metrics (Prometheus text format).
    public func stats() async throws -> String {
        let r: StatsResponse = try await call(RPC.stats, StatsRequest())
        return r.prometheusText
    }

    /// Rebuilds Redis from Postgres for every model (or the given ones). `ran` is false when another
    /// instance was already hydrating.
    public func hydrate(_ request: HydrateRequest = HydrateRequest(), timeout: Duration = .seconds(120)) async throws -> HydrateResponse {
        try await call(RPC.hydrate, request, timeout: timeout)
    }

    /// Compares Postgres with Redis (and with exchange positions you supply); optionally repairs the cache.
    public func checkConsistency(_ request: CheckConsistencyRequest, timeout: Duration = .seconds(120)) async throws -> CheckConsistencyResponse {
        try await call(RPC.checkConsistency, request, timeout: timeout)
    }

    /// Calls a write of the RPC table. One whose idempotency key is empty gets a fresh one, which every
    /// retry of this call reuses. (Typed, so the request is not boxed as an existential to ask.)
    public func call<Request: IdempotentRequest, Response>(
        _ rpc: TypedRPC<Request, Response>, _ request: Request, timeout: Duration? = nil
    ) async throws -> Response {
        guard request.idempotencyKey.isEmpty else { return try await call(rpc.method, request, timeout: timeout) }
        var keyed = request
        keyed.idempotencyKey = UUID().uuidString.lowercased()
        return try await call(rpc.method, keyed, timeout: timeout)
    }

    /// Calls one method of the RPC table. A write whose idempotency key is empty gets a fresh one,
    /// which every retry of this call reuses.
    public func call<Request, Response>(
        _ rpc: TypedRPC<Request, Response>, _ request: Request, timeout: Duration? = nil
    ) async throws -> Response {
        if var keyed = request as? any IdempotentRequest, keyed.idempotencyKey.isEmpty {
            keyed.idempotencyKey = UUID().uuidString.lowercased()
            return try await call(rpc.method, keyed, timeout: timeout)
        }
        return try await call(rpc.method, request, timeout: timeout)
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
                let connection: ClientConnection
                if let live = current.withLock({ $0 }), !live.isBroken {
                    connection = live
                } else {
                    connection = try await connector.connection().connection
                    current.withLock { $0 = connection }
                }
                let reply = try await connection.request(
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
                current.withLock { if $0?.isBroken == true { $0 = nil } }
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
            let c = try await ClientConnection.open(socketPath: configuration.socketPath, loop: configuration.eventLoop)
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
