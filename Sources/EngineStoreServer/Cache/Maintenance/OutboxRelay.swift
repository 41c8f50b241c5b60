/// Applies what the direct path did not: rows it handed over (a missing hash), then rows older
/// than the grace period (a crash, Redis down). Claims rows with FOR UPDATE SKIP LOCKED, so
/// several instances can relay at once.
struct OutboxRelay {
    /// Rows claimed per batch, and batches per pass.
    static let batchRows = 500
    static let batchesPerPass = 20

    let connections: MaintenanceConnections
    let cleaner: OutboxCleaner
    let rebuilder: CacheRebuilder
    let graceMs: Int
    let hooks: TestHooks
    let metrics: ServerMetrics?

    /// One pass. Returns false when a batch failed.
    func run() -> Bool {
        guard let s = connections.postgres() else { return false }
        let urgent = cleaner.takeUrgent()
        if !urgent.isEmpty {
            if batch(s, Outbox.claimIDs, [pgArray(urgent.map(String.init))]) == nil {
                cleaner.rebuildSoon(urgent)  // try again next pass
                return false
            }
        }
        for _ in 0..<Self.batchesPerPass {
            guard let n = batch(s, Outbox.claimDue, [String(graceMs), String(Self.batchRows)]) else { return false }
            if n == 0 { break }
        }
        return true
    }

    /// Claims rows with `claim`, rebuilds their keys from Postgres, applies, deletes. Returns the
    /// rows handled, or nil when Postgres or Redis failed (the rows stay for a later pass).
    private func batch(_ s: PostgresSession, _ claim: Statement, _ params: [String?]) -> Int? {
        guard let r = connections.redisConnection() else { return nil }
        do {
            try s.exec("BEGIN")
            let due = try s.run(claim, params)
            if due.rowCount == 0 {
                try s.exec("COMMIT")
                return 0
            }
            var ids: [String] = []
            var intents: [OutboxIntent] = []
            var seen = Set<String>()
            for i in 0..<due.rowCount {
                ids.append(due.string(i, 0) ?? "0")
                guard let intent = OutboxIntent(kind: due.string(i, 1) ?? "", subject: due.string(i, 2) ?? "", ref: due.string(i, 3) ?? "") else { continue }
                // Rebuilding a key once per batch is enough (stream entries are each kept).
                let row = intent.row
                let dedupe = row.kind.hasSuffix("_event") ? ids.last! : "\(row.kind)|\(row.subject)|\(row.ref)"
                if seen.insert(dedupe).inserted { intents.append(intent) }
            }
            let mutations = try rebuilder.mutations(for: intents, s)
            hooks.relayWillApply?(mutations.map(\.key))
            _ = try connections.apply(mutations, r)
            try s.run(Outbox.delete, [pgArray(ids)])
            try s.exec("COMMIT")
            metrics?.outboxRelayed.increment(by: ids.count)
            return ids.count
        } catch {
            _ = try? s.exec("ROLLBACK")
            connections.failed(error, "outbox relay")
            return nil
        }
    }
}
