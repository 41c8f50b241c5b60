import EngineStoreWire
import Foundation
import Hiredis
import Logging
import Synchronization

/// The one component that talks to Redis after commits (the direct path). It owns a hiredis
/// connection on its own thread and pipelines whatever has queued up into one round trip. When
/// that works, the outbox rows of those writes are cleared; when it does not, the mutations are
/// dropped and the relay rebuilds the keys from Postgres later (it reads the outbox), so a Redis
/// failure never reaches a request and never leaves stale values applied out of order.
final class CacheWriter: Sendable {
    enum Item: Sendable {
        case mutations([CacheMutation], outboxIDs: [Int64])
        case ping(@Sendable (ComponentHealth) -> Void)
    }

    private let endpoint: RedisEndpoint
    private let queue = BlockingQueue<Item>()
    private let logger: Logger
    private let thread = WorkerThread(name: "engine-store-redis")
    /// Reconnect backoff after a failure: doubles from the first delay up to the last.
    static let reconnectInitialMs: UInt64 = 50
    static let reconnectMaxMs: UInt64 = 2000
    static let timeoutMs = 2000

    /// Outbox ids whose mutations Redis took; the maintenance thread deletes them.
    let applied = OutboxCleaner()

    let metrics: ServerMetrics?
    let hooks: TestHooks

    init(endpoint: RedisEndpoint, metrics: ServerMetrics? = nil, hooks: TestHooks = TestHooks(), logger: Logger) {
        self.endpoint = endpoint
        self.hooks = hooks
        self.metrics = metrics
        self.logger = logger
    }



    func start() {
        thread.start { [self] in run() }
    }

    func enqueue(_ mutations: [CacheMutation], outboxIDs: [Int64] = []) {
        enqueue([(mutations, outboxIDs)])
    }

    /// Several writes at once; each keeps its own outcome (applied, declined, refused).
    /// `wake: false` queues them (their order is fixed now) and leaves the wake-up to `wake()`.
    func enqueue(_ writes: [(mutations: [CacheMutation], outboxIDs: [Int64])], wake: Bool = true) {
        queue.push(contentsOf: writes.filter { !$0.mutations.isEmpty || !$0.outboxIDs.isEmpty }
            .map { .mutations($0.mutations, outboxIDs: $0.outboxIDs) }, signal: wake)
    }

    func wake() {
        queue.signal()
    }

    /// Measures a PING round trip through the writer's own connection (so it reflects its real state).
    func ping(_ completion: @escaping @Sendable (ComponentHealth) -> Void) {
        queue.push(.ping(completion))
    }

    /// Applies what is queued (one attempt), then stops the thread.
    func shutdown() {
        queue.close()
        thread.join()
    }

    private func run() {
        var connection: RedisConnection?
        var backoff = Backoff(initialMs: Self.reconnectInitialMs, maxMs: Self.reconnectMaxMs)
        var down = false

        func connectIfNeeded() -> RedisConnection? {
            if let connection { return connection }
            guard backoff.isDue(monotonicNanos()) else { return nil }
            do {
                let c = try RedisConnection(endpoint: endpoint, timeoutMs: Self.timeoutMs)
                connection = c
                if down { logger.info("redis connected", metadata: ["endpoint": "\(endpoint)"]) }
                down = false
                backoff.reset()
                return c
            } catch {
                noteFailure(error)
                return nil
            }
        }

        func noteFailure(_ error: RedisError) {
            connection = nil
            if !down {
                logger.warning("redis unavailable; cache writes left to the outbox relay", metadata: [
                    "reason": "redis_unavailable", "error": "\(error.message)",
                ])
            }
            down = true
            backoff.next(now: monotonicNanos())
        }

        while true {
            let items = queue.popBatch(max: 1024)
            if items.isEmpty { break }
            // Each write's mutations and outbox ids stay together: a write whose conditional
            // mutation Redis declined keeps its outbox rows for the relay.
            var writes: [(mutations: [CacheMutation], ids: [Int64])] = []
            var pings: [@Sendable (ComponentHealth) -> Void] = []
            for item in items {
                switch item {
                case .mutations(let m, let ids): writes.append((m, ids))
                case .ping(let p): pings.append(p)
                }
            }
            if writes.contains(where: { !$0.mutations.isEmpty }) {
                if let c = connectIfNeeded() {
                    hooks.cacheWriterWillApply?(writes.flatMap { $0.mutations.map(\.key) })
                    defer { hooks.cacheWriterDidApply?(writes.flatMap { $0.mutations.map(\.key) }) }
                    do {
                        let started = monotonicNanos()
                        let outcomes = try c.apply(writes.map(\.mutations))
                        metrics?.cacheLatency(nanos: monotonicNanos() &- started)
                        // Each write keeps its own outcome: a refused one's outbox rows stay for the relay.
                        var refused = 0
                        var firstError: String?
                        for (write, outcome) in zip(writes, outcomes) {
                            switch outcome {
                            case .applied: applied.add(write.ids)
                            case .declined: applied.rebuildSoon(write.ids)
                            case .refused(let e):
                                refused += 1
                                firstError = firstError ?? e
                            }
                        }
                        if let firstError {
                            metrics?.cacheWriteFailed()
                            logger.warning("redis refused cache commands; left to the outbox relay", metadata: [
                                "reason": "redis_reply_error", "writes": "\(refused)", "error": "\(firstError)",
                            ])
                        }
                    } catch {
                        noteFailure(error)
                        metrics?.cacheWriteFailed()
                    }
                } else {
                    metrics?.cacheWriteFailed()
                }
            } else {
                for write in writes { applied.add(write.ids) }
            }
            for p in pings {
                let start = monotonicNanos()
                var health = ComponentHealth(ok: false, latencyMicros: 0, error: "not connected")
                if let c = connectIfNeeded() {
                    do {
                        let reply = try c.command(["PING"])
                        if case .error(let e) = reply {
                            health = ComponentHealth(ok: false, latencyMicros: 0, error: e)
                        } else {
                            health = ComponentHealth(ok: true, latencyMicros: (monotonicNanos() - start) / 1000)
                        }
                    } catch {
                        noteFailure(error)
                        health = ComponentHealth(ok: false, latencyMicros: 0, error: error.message)
                    }
                }
                p(health)
            }
        }
    }
}

/// Outbox ids whose cache work is done, waiting to be deleted.
final class OutboxCleaner: Sendable {
    private let ids = Mutex<[Int64]>([])
    private let urgent = Mutex<[Int64]>([])
    func add(_ new: [Int64]) {
        guard !new.isEmpty else { return }
        ids.withLock { $0.append(contentsOf: new) }
    }
    func take() -> [Int64] { ids.withLock { i in defer { i = [] }; return i } }

    /// Outbox rows whose key Redis declined (a missing hash): the relay rebuilds them on its next
    /// pass instead of after the grace period.
    func rebuildSoon(_ new: [Int64]) {
        guard !new.isEmpty else { return }
        urgent.withLock { $0.append(contentsOf: new) }
    }
    func takeUrgent() -> [Int64] { urgent.withLock { i in defer { i = [] }; return i } }
}
