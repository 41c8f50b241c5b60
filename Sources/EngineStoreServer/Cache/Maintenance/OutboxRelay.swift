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
            if batch(s, Outbox.ClaimIDs(ids: urgent)) == nil {
                cleaner.rebuildSoon(urgent)  // try again next pass
                return false
            }
        }
        for _ in 0..<Self.batchesPerPass {
            guard let n = batch(s, Outbox.ClaimDue(graceMs: graceMs, limit: Self.batchRows)) else { return false }
            if n == 0 { break }
        }
        return true
    }

    /// Claims rows with `claim`, rebuilds their keys from Postgres, applies, deletes. Returns the
    /// rows handled, or nil when Postgres or Redis failed (the rows stay for a later pass).
    private func batch<Claim: PGStatement>(_ s: PostgresSession, _ claim: Claim) -> Int? where Claim.Row == Outbox.Claimed {
        guard let r = connections.redisConnection() else { return nil }
        do {
            try s.exec("BEGIN")
            let due = try s.rows(claim)
            if due.isEmpty {
                try s.exec("COMMIT")
                return 0
            }
            var intents: [OutboxIntent] = []
            var seen = Set<String>()
            for row in due {
                guard let intent = row.intent else { continue }
                // Rebuilding a key once per batch is enough (stream entries are each kept).
                let r = intent.row
                let dedupe = r.kind.hasSuffix("_event") ? row.id : "\(r.kind)|\(r.subject)|\(r.ref)"
                if seen.insert(dedupe).inserted { intents.append(intent) }
            }
            let ids = due.map(\.id)
            let mutations = try rebuilder.mutations(for: intents, s)
            hooks.relayWillApply?(mutations.map(\.key))
            _ = try connections.apply(mutations, r)
            try s.execute(Outbox.Delete(ids: ids))
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
