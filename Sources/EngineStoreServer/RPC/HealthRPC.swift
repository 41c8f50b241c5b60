import EngineStoreWire
import LibPQ
import Synchronization

/// Health: the service answers, and measures a trivial round trip to Postgres (through the worker
/// queue, so queueing shows) and to Redis (through the cache writer's own connection).
struct HealthRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.health] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        _ = try HealthRequest.decodeRequest(payload)
        let join = HealthJoin(context: context, reply: reply)
        context.postgres.submit(PingJob(deadlineNanos: reply.deadlineNanos) { join.postgres($0) })
        context.cache.ping { join.redis($0) }
    }
}

/// Waits for both pings, then answers.
private final class HealthJoin: Sendable {
    let context: ServiceContext
    let reply: ReplyTarget
    let parts = Mutex<(postgres: ComponentHealth?, redis: ComponentHealth?)>((nil, nil))

    init(context: ServiceContext, reply: ReplyTarget) {
        self.context = context
        self.reply = reply
    }

    func postgres(_ h: ComponentHealth) { finish(parts.withLock { $0.postgres = h; return $0 }) }
    func redis(_ h: ComponentHealth) { finish(parts.withLock { $0.redis = h; return $0 }) }

    private func finish(_ state: (postgres: ComponentHealth?, redis: ComponentHealth?)) {
        guard let pg = state.postgres, let redis = state.redis else { return }
        let status: HealthStatus = !pg.ok ? .unhealthy : (redis.ok ? .ok : .degraded)
        reply.send(HealthResponse(
            status: status, postgres: pg, redis: redis,
            uptimeMs: (monotonicNanos() - context.startedNanos) / 1_000_000,
            openConnections: UInt32(clamping: context.stats.openConnections.load(ordering: .relaxed)),
            instanceID: context.configuration.instanceID, serverVersion: serverVersion))
    }
}

/// `SELECT 1` outside any transaction.
private struct PingJob: PostgresJob {
    let deadlineNanos: UInt64
    let done: @Sendable (ComponentHealth) -> Void
    var isTransactional: Bool { false }

    init(deadlineNanos: UInt64, done: @escaping @Sendable (ComponentHealth) -> Void) {
        self.deadlineNanos = deadlineNanos
        self.done = done
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let start = monotonicNanos()
        try session.exec("SELECT 1")
        done(ComponentHealth(ok: true, latencyMicros: (monotonicNanos() - start) / 1000))
        return JobOutcome(reply: [])
    }

    func complete(_ result: Result<JobOutcome, ServiceError>) {
        if case .failure(let e) = result {
            done(ComponentHealth(ok: false, latencyMicros: 0, error: e.message))
        }
    }
}
