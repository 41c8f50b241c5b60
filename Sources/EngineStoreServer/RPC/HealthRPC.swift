import Dispatch
import EngineStoreWire
import LibPQ
import Synchronization

/// Health: the service answers, and measures a trivial round trip to Postgres (through the worker
/// queue, so queueing shows) and to Redis (through the cache writer's own connection).
/// It always answers in bounded time: a component that has not answered within the health timeout
/// (`healthTimeoutMs`, or half the request's remaining deadline if that is shorter) counts as down,
/// so a hung Postgres (stuck workers) or a hung Redis gives `unhealthy` or `degraded`, never silence.
struct HealthRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.health] }

    /// The health timers' own queue. A queue made this way gets a thread even when every thread of
    /// the global concurrent queue is busy (that one is as wide as the machine has cores): on it, a
    /// timer waited behind blocked work, and a 1 s answer took over 2 s (CI, with a test process's
    /// other tests holding those threads).
    private static let timers = DispatchQueue(label: "engine-store.health-timers")

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        _ = try HealthRequest.decodeRequest(payload)
        let join = HealthJoin(context: context, reply: reply)
        let now = monotonicNanos()
        let remaining = reply.deadlineNanos > now ? reply.deadlineNanos - now : 0
        let wait = min(context.configuration.healthTimeoutMs * 1_000_000, remaining / 2)
        // A ping still queued when the answer is due is not run at all.
        context.postgres.submit(PingJob(deadlineNanos: now + wait) { join.postgres($0) })
        context.cache.ping { join.redis($0) }
        Self.timers.asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: wait))) {
            join.expire(afterMs: wait / 1_000_000)
        }
    }
}

/// Waits for both pings or the timer, whichever completes the picture first, then answers exactly
/// once; anything arriving after the answer is ignored.
private final class HealthJoin: Sendable {
    private struct Parts {
        var postgres: ComponentHealth?
        var redis: ComponentHealth?
        var answered = false
    }

    let context: ServiceContext
    let reply: ReplyTarget
    private let parts = Mutex(Parts())

    init(context: ServiceContext, reply: ReplyTarget) {
        self.context = context
        self.reply = reply
    }

    func postgres(_ h: ComponentHealth) { settle { if $0.postgres == nil { $0.postgres = h } } }
    func redis(_ h: ComponentHealth) { settle { if $0.redis == nil { $0.redis = h } } }

    /// The health timeout: a component that has not answered yet is down.
    func expire(afterMs ms: UInt64) {
        let silent = ComponentHealth(ok: false, latencyMicros: 0, error: "no answer within \(ms) ms")
        settle { p in
            if p.postgres == nil { p.postgres = silent }
            if p.redis == nil { p.redis = silent }
        }
    }

    private func settle(_ update: (inout Parts) -> Void) {
        let ready: (postgres: ComponentHealth, redis: ComponentHealth)? = parts.withLock { p in
            guard !p.answered else { return nil }
            update(&p)
            guard let pg = p.postgres, let redis = p.redis else { return nil }
            p.answered = true
            return (pg, redis)
        }
        guard let (pg, redis) = ready else { return }
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
