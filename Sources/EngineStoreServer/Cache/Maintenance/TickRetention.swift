import LibPQ

/// Deletes `price_ticks` older than the retention period, in small batches, off the hot path.
///
/// Why batched deletes and not daily partitions: `price_ticks` is nof0's table (a plain table with
/// `id BIGSERIAL PRIMARY KEY`, which nof0's code and migrations expect); a partitioned table would
/// need the partition key in its primary key and would differ from a database nof0 created. The
/// deletes use nof0's own `(symbol, ts_ms DESC)` index, one symbol at a time, so a pass with nothing
/// to delete costs one index probe per symbol and adds no index to the ingest path.
///
/// One instance at a time: a pass holds a session advisory lock; another instance that finds it
/// taken skips its pass.
struct TickRetention {
    /// Advisory lock key of the pass ("ESTICKRT" as eight bytes).
    static let lockKey: Int64 = 0x4553_5449_434B_5254
    /// Rows deleted per statement: short transactions, no long lock on the table.
    static let defaultBatchRows = 5000
    /// A pass stops after this many batches and resumes at its next run, so the maintenance
    /// thread's other jobs (the relay above all) wait at most one batch.
    static let maxBatchesPerPass = 20

    let connections: MaintenanceConnections
    let retentionDays: Int
    var batchRows = defaultBatchRows
    /// The wall clock, in ms since the epoch (a fake one in tests).
    var nowMillis: @Sendable () -> Int64 = { epochMillis() }

    /// What one pass did.
    struct Outcome: Equatable {
        var deleted = 0
        /// False when another instance held the lock.
        var ran = true
        /// True when the pass stopped at its batch budget with old ticks left.
        var more = false
    }

    /// Deletes up to `maxBatchesPerPass` batches of ticks whose `ts_ms` is older than the cutoff.
    @discardableResult
    func run() -> Outcome {
        guard retentionDays > 0, let s = connections.postgres() else { return Outcome(ran: false) }
        do { return try pass(s) } catch {
            connections.failed(error, "tick retention")
            return Outcome(ran: false)
        }
    }

    func pass(_ s: PostgresSession) throws -> Outcome {
        guard try s.first(MarketDataStore.TryLockRetention(key: Self.lockKey)) == true else { return Outcome(ran: false) }
        defer { _ = try? s.execute(MarketDataStore.UnlockRetention(key: Self.lockKey)) }
        let cutoff = nowMillis() - Int64(retentionDays) * 86_400_000
        var outcome = Outcome()
        var batches = 0
        for symbol in try s.rows(MarketDataStore.TickSymbols()) {
            while true {
                guard batches < Self.maxBatchesPerPass else {
                    outcome.more = true
                    return log(outcome)
                }
                batches += 1
                let deleted = try s.execute(MarketDataStore.DeleteOldTicks(symbol: symbol, cutoffMs: cutoff, limit: batchRows)).affectedRows
                outcome.deleted += deleted
                if deleted < batchRows { break }
            }
        }
        return log(outcome)
    }

    private func log(_ outcome: Outcome) -> Outcome {
        if outcome.deleted > 0 {
            connections.logger.info("old price ticks deleted", metadata: ["count": "\(outcome.deleted)", "more": "\(outcome.more)"])
        }
        return outcome
    }
}
