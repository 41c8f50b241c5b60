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
    private let counters = CacheWriterCounters()

    let metrics: ServerMetrics?

    init(endpoint: RedisEndpoint, metrics: ServerMetrics? = nil, logger: Logger) {
        self.endpoint = endpoint
        self.metrics = metrics
        self.logger = logger
    }

    var droppedBatches: Int { counters.dropped.load(ordering: .relaxed) }

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
            var mutations: [CacheMutation] = []
            var outboxIDs: [Int64] = []
            var pings: [@Sendable (ComponentHealth) -> Void] = []
            for item in items {
                switch item {
                case .mutations(let m, let ids):
                    mutations.append(contentsOf: m)
                    outboxIDs.append(contentsOf: ids)
                case .ping(let p): pings.append(p)
                }
            }
            if !mutations.isEmpty {
                if let c = connectIfNeeded() {
                    do {
                        let started = monotonicNanos()
                        let replies = try c.pipeline(mutations.flatMap(\.commands))
                        metrics?.latency(rpc: "all", stage: "cache", nanos: monotonicNanos() &- started)
                        for case .error(let e) in replies {
                            logger.error("redis rejected a cache command", metadata: ["reason": "redis_reply_error", "error": "\(e)"])
                        }
                        applied.add(outboxIDs)
                    } catch {
                        noteFailure(error)
                        counters.dropped.add(1, ordering: .relaxed)
                    }
                } else {
                    counters.dropped.add(1, ordering: .relaxed)
                }
            } else if !outboxIDs.isEmpty {
                applied.add(outboxIDs)
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
    func add(_ new: [Int64]) {
        guard !new.isEmpty else { return }
        ids.withLock { $0.append(contentsOf: new) }
    }
    func take() -> [Int64] { ids.withLock { i in defer { i = [] }; return i } }
}

final class CacheWriterCounters: Sendable {
    let dropped = Atomic<Int>(0)
}
