import Logging

/// Deletes idempotency keys older than the retention period.
struct IdempotencyPurge {
    let connections: MaintenanceConnections
    let retentionHours: Int

    func run() {
        guard let s = connections.postgres() else { return }
        do {
            let r = try s.run(purgeKeys, [String(retentionHours)])
            if r.affectedRows > 0 { connections.logger.info("idempotency keys purged", metadata: ["count": "\(r.affectedRows)"]) }
        } catch { connections.failed(error, "idempotency purge") }
    }
}

private let purgeKeys = Statement(name: "idem_purge", sql: """
    DELETE FROM engine_store_idempotency WHERE created_at < now() - make_interval(hours => $1::int)
    """)
