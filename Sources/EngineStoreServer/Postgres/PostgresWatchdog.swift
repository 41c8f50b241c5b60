import Foundation
import Glibc
import Logging
import Synchronization

/// Bounds how long a worker waits on Postgres. libpq's blocking calls have no timeout of their own,
/// so a hung server (SIGSTOP, a dead host, a lock wait without end) would hold a worker and every
/// request behind it until their deadlines. The watchdog shuts the socket down under a batch that
/// outlived its limit; libpq then reports a broken connection, which the worker answers like any
/// other (`unavailable`, retryable with the same key) before it reconnects.
///
/// Only `shutdown(2)`, never `close(2)`: the descriptor stays owned by libpq. The worker keeps its
/// connection alive while it is armed, so the number cannot be reused by another socket meanwhile.
final class PostgresWatchdog: Sendable {
    private let armed = Mutex<[Int: (fd: Int32, deadline: UInt64)]>([:])
    private let limitNanos: UInt64
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)

    init(limitMs: UInt64, logger: Logger) {
        self.limitNanos = limitMs * 1_000_000
        self.logger = logger
    }

    var enabled: Bool { limitNanos > 0 }

    func start() {
        guard enabled else { return }
        WorkerThread.detach(name: "engine-store-pg-watchdog") { [self] in
            while !stopped.load(ordering: .relaxed) {
                usleep(20_000)
                let now = monotonicNanos()
                let late = armed.withLock { slots -> [(Int, Int32)] in
                    let due = slots.filter { $0.value.deadline <= now }
                    for (worker, _) in due { slots[worker] = nil }
                    return due.map { ($0.key, $0.value.fd) }
                }
                for (worker, fd) in late {
                    Glibc.shutdown(fd, Int32(SHUT_RDWR))
                    logger.warning("postgres did not answer in time; connection dropped", metadata: [
                        "reason": "postgres_timeout", "worker": "\(worker)", "limit_ms": "\(limitNanos / 1_000_000)",
                    ])
                }
            }
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    func arm(worker: Int, fd: Int32) {
        guard enabled, fd >= 0 else { return }
        let deadline = monotonicNanos() + limitNanos
        armed.withLock { $0[worker] = (fd, deadline) }
    }

    func disarm(worker: Int) {
        guard enabled else { return }
        _ = armed.withLock { $0.removeValue(forKey: worker) }
    }
}
