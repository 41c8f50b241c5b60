import LibPQ
import Logging

/// How a worker runs its jobs: reads and pings outside any transaction; writes in transactions,
/// pipelined when every job of the batch can be, else step by step.
extension PostgresWorker {
    /// One group commit: pipelined (two-phase jobs, closes, with them) when every job can be, else
    /// step by step. Jobs of the two ways commit apart when no job of one takes a lock key of the
    /// other: a single job that must go step by step (a snapshot with marks) would otherwise send the
    /// whole batch that way, and each part keeps the ascending lock order on its own. A two-phase job
    /// that takes a key an earlier job of the batch takes waits for the next transaction.
    func runTransaction(_ jobs: [any PostgresJob]) {
        if let parts = Self.independentParts(jobs) ?? Self.repeatsApart(jobs) {
            for part in parts { runTransaction(part) }
            return
        }
        guard let session = self.session ?? liveSession() else {
            let e = ServiceError(.unavailable, "postgres unavailable; retry with the same idempotency key")
            jobs.forEach { $0.complete(.failure(e)) }
            return
        }
        if runPipelined(jobs, session) { return }
        guard let session = self.session else {
            let e = ServiceError(.unavailable, "postgres connection lost; retry with the same idempotency key")
            jobs.forEach { $0.complete(.failure(e)) }
            return
        }
        runStepwise(jobs, session)
    }

    /// The jobs by how they run, in their order, when both ways are there (pipelined or in two phases;
    /// step by step) and no two ways share a lock key (so the order of their commits cannot matter);
    /// nil otherwise.
    static func independentParts(_ jobs: [any PostgresJob]) -> [[any PostgresJob]]? {
        var parts: [[any PostgresJob]] = [[], []]
        for job in jobs { parts[job.canPipeline || job.canTwoPhase ? 0 : 1].append(job) }
        guard !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        return Set(parts[0].flatMap(\.lockKeys)).isDisjoint(with: parts[1].flatMap(\.lockKeys)) ? parts : nil
    }

    /// A batch of pipelined and two-phase jobs cut in two transactions, in order, when a two-phase job
    /// shares a lock key with an earlier job, or a job with an earlier two-phase job: a two-phase job
    /// writes after every job's first round trip, so its reads would miss the earlier job's writes, or
    /// its writes would come after the later job's. The first transaction keeps every job but the
    /// clashing ones and every later job on a key of one (so each key's jobs keep their order); they
    /// make the second. Nil when nothing clashes, no job runs in two phases, or one runs step by step.
    static func repeatsApart(_ jobs: [any PostgresJob]) -> [[any PostgresJob]]? {
        guard jobs.contains(where: \.canTwoPhase) else { return nil }  // saves of one slot take turns in a pipeline
        var now: [any PostgresJob] = [], later: [any PostgresJob] = []
        var taken: [String: Bool] = [:]  // key → taken by a two-phase job of `now`
        var deferred = Set<String>()
        for job in jobs {
            guard job.canPipeline || job.canTwoPhase else { return nil }
            let twoPhase = !job.canPipeline, keys = job.lockKeys
            if keys.contains(where: { deferred.contains($0) || taken[$0].map { $0 || twoPhase } == true }) {
                later.append(job)
                deferred.formUnion(keys)
            } else {
                now.append(job)
                for key in keys { taken[key] = taken[key] == true || twoPhase }
            }
        }
        return later.isEmpty ? nil : [now, later]
    }

    /// A read or a ping, outside any transaction: nothing is committed, so nothing is counted as a
    /// commit; a read's cache refill is handed on all the same.
    func runStandalone(_ job: any PostgresJob, _ session: PostgresSession) {
        do {
            let outcome = try job.execute(session)
            pool.handOff([outcome])
            job.complete(.success(outcome))
        } catch {
            job.complete(.failure(failed(error)))
        }
    }

    /// Jobs one after another in one transaction. Several share it, each under a savepoint so that
    /// one failure stays its own; a lone job needs none (its failure rolls the transaction back).
    /// Cache mutations are queued before the clients hear back, so a client that waits for its ack
    /// before the next write sees the cache mutations applied in the same order.
    func runStepwise(_ jobs: [any PostgresJob], _ session: PostgresSession) {
        let shared = jobs.count > 1
        var outcomes: [(any PostgresJob, JobOutcome)] = []
        outcomes.reserveCapacity(jobs.count)
        var reached = 0  // jobs[..<reached] have either an outcome or their own error answer
        do {
            // BEGIN and each savepoint change ride in one simple-query round trip.
            var pending = shared ? "BEGIN; SAVEPOINT job" : "BEGIN"
            for job in jobs {
                try session.exec(pending)
                do {
                    outcomes.append((job, try job.execute(session)))
                    pending = shared ? "RELEASE SAVEPOINT job; " : ""
                } catch let error as PGError where error.kind == .connection {
                    throw error
                } catch {
                    guard shared else {
                        try? session.exec("ROLLBACK")
                        job.complete(.failure(failed(error)))
                        return
                    }
                    job.complete(.failure(failed(error)))
                    pending = "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job; "
                }
                reached += 1
                pending += reached == jobs.count ? "COMMIT" : "SAVEPOINT job"
            }
            try session.exec(pending)
        } catch {
            try? session.exec("ROLLBACK")
            let e = failed(error)
            for (job, _) in outcomes { job.complete(.failure(e)) }
            for job in jobs[reached...] { job.complete(.failure(e)) }
            return
        }
        guard !outcomes.isEmpty else { return }
        pool.afterCommit(outcomes.map(\.1)) {
            for (job, outcome) in outcomes { job.complete(.success(outcome)) }
        }
    }

    /// What a failed job answers. A broken connection is dropped here, in the open: every failure
    /// path goes through this one call, so none can keep using a dead session.
    func failed(_ error: any Error) -> ServiceError {
        if let e = error as? PGError, e.kind == .connection { connectionLost(e) }
        return answer(for: error)
    }

    /// The answer for an error; no side effect on the worker.
    func answer(for error: any Error) -> ServiceError {
        if let e = error as? ServiceError { return e }
        if let e = error as? PGError {
            if e.kind == .connection {
                return ServiceError(.unavailable, "postgres connection lost; retry with the same idempotency key")
            }
            if e.sqlState == "40P01" {
                pool.metrics?.deadlockDetected()
                logger.warning("deadlock detected", metadata: ["reason": "postgres_deadlock"])
            }
            if e.isTransient {
                return ServiceError(.unavailable, "transient postgres error (SQLSTATE \(e.sqlState ?? "?")); retry")
            }
            if let rejected = e.rejectedInput { return rejected }
            if e.isConstraintViolation {
                return ServiceError(.conflict, "constraint violation: \(e.message)")
            }
            logger.error("statement failed", metadata: ["reason": "postgres_statement", "error": "\(e)"])
            return ServiceError(.internalError, "database error (SQLSTATE \(e.sqlState ?? "?"))")
        }
        return ServiceError(.internalError, "\(error)")
    }
}
