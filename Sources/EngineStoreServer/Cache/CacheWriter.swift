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
    private let done = DispatchSemaphore(value: 0)

    /// Outbox ids whose mutations Redis took; the maintenance thread deletes them.
    let applied = OutboxCleaner()

    let metrics: ServerMetrics?

    init(endpoint: RedisEndpoint, metrics: ServerMetrics? = nil, logger: Logger) {
        self.endpoint = endpoint
        self.metrics = metrics
        self.logger = logger
    }



    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "engine-store-redis"
        thread.start()
    }

    func enqueue(_ mutations: [CacheMutation], outboxIDs: [Int64] = []) {
        guard !mutations.isEmpty || !outboxIDs.isEmpty else { return }
        queue.push(.mutations(mutations, outboxIDs: outboxIDs))
    }

    /// Measures a PING round trip through the writer's own connection (so it reflects its real state).
    func ping(_ completion: @escaping @Sendable (ComponentHealth) -> Void) {
        queue.push(.ping(completion))
    }

    /// Applies what is queued (one attempt), then stops the thread.
    func shutdown() {
        queue.close()
        done.wait()
    }

    private func run() {
        var connection: RedisConnection?
        var backoffMs = 50
        var nextAttemptNanos: UInt64 = 0
        var down = false

        func connectIfNeeded() -> RedisConnection? {
            if let connection { return connection }
            guard monotonicNanos() >= nextAttemptNanos else { return nil }
            do {
                let c = try RedisConnection(endpoint: endpoint, timeoutMs: 2000)
                connection = c
                if down { logger.info("redis connected", metadata: ["endpoint": "\(endpoint)"]) }
                down = false
                backoffMs = 50
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
            nextAttemptNanos = monotonicNanos() + UInt64(backoffMs) * 1_000_000
            backoffMs = min(backoffMs * 2, 2000)
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
            var commands: [[String]] = []
            var conditional: [(write: Int, reply: Int)] = []
            for (w, write) in writes.enumerated() {
                for m in write.mutations {
                    if m.isConditional { conditional.append((w, commands.count)) }
                    commands.append(contentsOf: m.commands)
                }
            }
            if !commands.isEmpty {
                if let c = connectIfNeeded() {
                    do {
                        let started = monotonicNanos()
                        let replies = try c.pipeline(commands)
                        metrics?.cacheLatency(nanos: monotonicNanos() &- started)
                        for case .error(let e) in replies {
                            logger.error("redis rejected a cache command", metadata: ["reason": "redis_reply_error", "error": "\(e)"])
                        }
                        var declined = Set<Int>()
                        for (w, r) in conditional where replies[r] == .integer(0) { declined.insert(w) }
                        for (w, write) in writes.enumerated() {
                            if declined.contains(w) { applied.rebuildSoon(write.ids) } else { applied.add(write.ids) }
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
        done.signal()
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
