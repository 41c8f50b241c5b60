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

    /// Claims rows with `claim`, rebuilds their keys from Postgres, applies, deletes the rows Redis
    /// took. Returns the rows handled, or nil when Postgres or Redis failed (the rest stay for a
    /// later pass).
    ///
    /// The rows' writes are kept apart: the key rebuilds (idempotent, each key once per batch) are
    /// one write, and each stream event its own. An event Redis took is deleted even when another
    /// write was refused, so a refusal that clears half-way through a batch (Redis reaching
    /// maxmemory, a key of the wrong type) never sends an entry twice.
    private func batch<Claim: PGStatement>(_ s: PostgresSession, _ claim: Claim) -> Int? where Claim.Row == Outbox.Claimed {
        guard let r = connections.redisConnection() else { return nil }
        do {
            try s.exec("BEGIN")
            let due = try s.rows(claim)
            if due.isEmpty {
                try s.exec("COMMIT")
                return 0
            }
            var keys = RelayWrite(ids: [], mutations: [])
            var events: [RelayWrite] = []
            var keyIntents: [OutboxIntent] = []
            var seen = Set<String>()
            for row in due {
                guard let intent = row.intent else {
                    keys.ids.append(row.id)  // a kind this version does not know: nothing to do
                    continue
                }
                if intent.isStreamEvent {
                    events.append(RelayWrite(ids: [row.id], mutations: try rebuilder.mutations(for: intent, s)))
                } else {
                    keys.ids.append(row.id)
                    // A row of several intents (a batch's shared row) stands for each of them.
                    for one in intent.parts {
                        let r = one.row
                        if seen.insert("\(r.kind)|\(r.subject)|\(r.ref)").inserted { keyIntents.append(one) }
                    }
                }
            }
            keys.mutations = try rebuilder.mutations(for: keyIntents, s)
            let writes = [keys] + events
            hooks.relayWillApply?(writes.flatMap { $0.mutations.map(\.key) })
            let outcomes = try r.apply(writes.map(\.mutations))
            var done: [String] = []
            var refusal: String?
            for (write, outcome) in zip(writes, outcomes) {
                if case .refused(let e) = outcome { refusal = refusal ?? e } else { done.append(contentsOf: write.ids) }
            }
            if !done.isEmpty { try s.execute(Outbox.Delete(ids: done)) }
            try s.exec("COMMIT")
            metrics?.outboxRelayed.increment(by: done.count)
            if let refusal {
                connections.failed(RedisRefused(message: refusal), "outbox relay")
                return nil
            }
            return done.count
        } catch {
            _ = try? s.exec("ROLLBACK")
            connections.failed(error, "outbox relay")
            return nil
        }
    }
}

/// Outbox rows and the mutations that settle them.
private struct RelayWrite {
    var ids: [String]
    var mutations: [CacheMutation]
}
