import Hiredis
import LibPQ
import Logging

/// Keeps nof0's materialized views current (nof0's `cmd/cron` calls `refresh_views_nof0()` for
/// this): every interval it refreshes what that function refreshes, in the same order, CONCURRENTLY
/// where the view has a unique index (readers are never blocked; nof0's v_since_inception has none, so
/// it is refreshed plainly). On a thread of its own, so a long refresh never delays the outbox relay,
/// and under a Postgres advisory lock, so one instance refreshes at a time (the others skip a round).
final class ViewRefresher: Sendable {
    /// nof0's views, in refresh_views_nof0()'s order.
    static let views = ["v_crypto_prices_latest", "v_leaderboard", "v_since_inception"]
    /// Arbitrary constant: "ES" "VR" in ASCII.
    static let advisoryLockKey = 0x4553_5652

    private let intervalSeconds: Int
    private let conninfo: String
    private let redis: RedisEndpoint
    private let logger: Logger
    private let stop = BlockingQueue<Bool>()
    private let thread = WorkerThread(name: "engine-store-view-refresh")

    init(intervalSeconds: Int, conninfo: String, redis: RedisEndpoint, logger: Logger) {
        self.intervalSeconds = intervalSeconds
        self.conninfo = conninfo
        self.redis = redis
        self.logger = logger
    }

    /// Starts the thread; nothing when the interval is 0.
    func start() {
        guard intervalSeconds > 0 else { return }
        thread.start { [self] in
            let connections = MaintenanceConnections(conninfo: conninfo, redis: redis, logger: logger)
            // The stop queue is the clock: it wakes at the interval, or at once when closed.
            while true {
                _ = stop.popBatch(max: 1, timeoutSeconds: Double(intervalSeconds))
                if stop.isClosedAndEmpty { break }
                if let s = connections.postgres() {
                    do { try Self.refresh(s, logger: logger) } catch { connections.failed(error, "view refresh") }
                }
            }
        }
    }

    func shutdown() {
        stop.close()
        if intervalSeconds > 0 { thread.join() }
    }

    /// One round: false when another instance holds the lock (nothing refreshed).
    @discardableResult
    static func refresh(_ s: PostgresSession, logger: Logger) throws -> Bool {
        guard try s.first(ViewStore.TryLock(key: advisoryLockKey)) == true else { return false }
        defer { _ = try? s.execute(ViewStore.Unlock(key: advisoryLockKey)) }
        let started = monotonicNanos()
        let plan = try s.rows(ViewStore.Plan(views: views))
        // The name is one of `views` (the plan only returns those), so it is safe in the text.
        for view in plan where views.contains(view.name) {
            try s.exec("REFRESH MATERIALIZED VIEW \(view.concurrently ? "CONCURRENTLY " : "")\(view.name)")
        }
        logger.debug("nof0 views refreshed", metadata: ["views": "\(plan.count)", "ms": "\((monotonicNanos() - started) / 1_000_000)"])
        return true
    }
}
