import Logging

/// Deletes idempotency keys older than the retention period.
struct IdempotencyPurge {
    let connections: MaintenanceConnections
    let retentionHours: Int

    func run() {
        guard let s = connections.postgres() else { return }
        do {
            let r = try s.execute(Idempotency.Purge(hours: retentionHours))
            if r.affectedRows > 0 { connections.logger.info("idempotency keys purged", metadata: ["count": "\(r.affectedRows)"]) }
        } catch { connections.failed(error, "idempotency purge") }
    }
}
