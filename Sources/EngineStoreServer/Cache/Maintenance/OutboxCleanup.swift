/// Deletes outbox rows whose mutations the direct path applied, and reports the outbox depth.
struct OutboxCleanup {
    let connections: MaintenanceConnections
    let cleaner: OutboxCleaner
    let metrics: ServerMetrics?

    /// Deletes outbox rows whose mutations the direct path applied.
    func clearApplied() {
        let ids = cleaner.take()
        guard !ids.isEmpty else { return }
        guard let s = connections.postgres() else { return }  // the relay will redo them; harmless
        do {
            try s.execute(Outbox.Delete(ids: ids.map(String.init)))
        } catch { connections.failed(error, "outbox clear") }
    }

    /// Records the number of rows waiting in the outbox.
    func recordDepth() {
        if let s = connections.postgres(), let depth = try? s.first(Outbox.Depth()) {
            metrics?.outboxDepth.record(depth)
        }
    }
}
