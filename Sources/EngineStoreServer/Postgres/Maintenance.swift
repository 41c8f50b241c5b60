import Foundation
import Logging
import Synchronization

/// Periodic housekeeping: forgets idempotency keys older than the retention period.
/// Safe with several instances (a DELETE by age is idempotent).
final class Maintenance: Sendable {
    private let running = Atomic<Bool>(false)

    func start(postgres: PostgresPool, retentionHours: Int, logger: Logger) {
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            var next = monotonicNanos() + 60_000_000_000
            while running.load(ordering: .relaxed) {
                usleep(200_000)
                guard monotonicNanos() >= next else { continue }
                next = monotonicNanos() + 600_000_000_000
                postgres.submit(PurgeIdempotencyJob(retentionHours: retentionHours, logger: logger))
            }
        }
        t.name = "engine-store-maintenance"
        t.start()
    }

    func stop() { running.store(false, ordering: .relaxed) }
}

struct PurgeIdempotencyJob: PostgresJob {
    let retentionHours: Int
    let logger: Logger
    var deadlineNanos: UInt64 { .max }
    var isTransactional: Bool { false }

    static let purge = Statement(name: "idem_purge", sql: """
        DELETE FROM engine_store_idempotency WHERE created_at < now() - make_interval(hours => $1::int)
        """)

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        let r = try session.run(Self.purge, [String(retentionHours)])
        if r.affectedRows > 0 { logger.info("idempotency keys purged", metadata: ["count": "\(r.affectedRows)"]) }
        return JobOutcome(reply: [])
    }

    func complete(_ result: Result<JobOutcome, ServiceError>) {}
}
