import EngineStoreWire
import Foundation
import Hiredis
import Logging

/// The one component that talks to Redis after commits. It owns a hiredis connection on its own
/// thread, pipelines whatever has queued up into one round trip, and reconnects with backoff.
/// A Redis failure never reaches the request that caused the mutation.
final class CacheWriter: Sendable {
    enum Item: Sendable {
        case mutations([CacheMutation])
        case ping(@Sendable (ComponentHealth) -> Void)
    }

    private let endpoint: RedisEndpoint
    private let queue = BlockingQueue<Item>()
    private let logger: Logger
    private let done = DispatchSemaphore(value: 0)
    /// Mutations kept for retry while Redis is down; beyond this the oldest are dropped (and counted).
    private let maxPending = 100_000

    init(endpoint: RedisEndpoint, logger: Logger) {
        self.endpoint = endpoint
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "engine-store-redis"
        thread.start()
    }

    func enqueue(_ mutations: [CacheMutation]) {
        guard !mutations.isEmpty else { return }
        queue.push(.mutations(mutations))
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
        var pending: [CacheMutation] = []
        var backoffMs = 50
        var nextAttemptNanos: UInt64 = 0

        func connectIfNeeded() -> RedisConnection? {
            if let connection { return connection }
            guard monotonicNanos() >= nextAttemptNanos else { return nil }
            do {
                let c = try RedisConnection(endpoint: endpoint, timeoutMs: 2000)
                connection = c
                if backoffMs > 50 { logger.info("redis connected", metadata: ["endpoint": "\(endpoint)"]) }
                backoffMs = 50
                return c
            } catch {
                noteFailure(error)
                return nil
            }
        }

        func noteFailure(_ error: RedisError) {
            connection = nil
            logger.warning("redis unavailable; cache writes retried", metadata: [
                "reason": "redis_unavailable", "error": "\(error.message)", "retry_in_ms": "\(backoffMs)",
            ])
            nextAttemptNanos = monotonicNanos() + UInt64(backoffMs) * 1_000_000
            backoffMs = min(backoffMs * 2, 5000)
        }

        while true {
            // While mutations wait for a reconnect, wake up periodically instead of blocking forever.
            let items: [Item]
            if pending.isEmpty {
                items = queue.popBatch(max: 1024)
                if items.isEmpty { break }
            } else {
                if queue.isClosedAndEmpty {
                    // Shutting down: one last attempt, then give up what Redis did not take.
                    if let c = connectIfNeeded(), (try? c.pipeline(pending.flatMap(\.commands))) != nil {
                        pending.removeAll()
                    }
                    break
                }
                items = queue.count > 0 ? queue.popBatch(max: 1024) : []
                if items.isEmpty { usleep(20_000) }
            }
            var pings: [@Sendable (ComponentHealth) -> Void] = []
            for item in items {
                switch item {
                case .mutations(let m): pending.append(contentsOf: m)
                case .ping(let p): pings.append(p)
                }
            }
            if pending.count > maxPending {
                let dropped = pending.count - maxPending
                pending.removeFirst(dropped)
                logger.error("cache backlog full; oldest mutations dropped", metadata: [
                    "reason": "cache_backlog_full", "dropped": "\(dropped)",
                ])
            }
            if !pending.isEmpty, let c = connectIfNeeded() {
                do {
                    let replies = try c.pipeline(pending.flatMap(\.commands))
                    for case .error(let e) in replies {
                        logger.error("redis rejected a cache command", metadata: ["reason": "redis_reply_error", "error": "\(e)"])
                    }
                    pending.removeAll(keepingCapacity: true)
                } catch {
                    noteFailure(error)
                }
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
        if !pending.isEmpty {
            logger.warning("shutdown with cache mutations not applied", metadata: ["count": "\(pending.count)"])
        }
        done.signal()
    }
}
