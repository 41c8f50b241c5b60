import LibPQ

/// A batch of writes that read before they write (closes): two round trips for the whole batch
/// instead of four per job (savepoint, key claim, row lock, writes) on the step-by-step path.
extension PostgresWorker {
    /// Phase one sends BEGIN and every job's reads (its key claim, then its row lock: jobs come in
    /// ascending lock order, so the locks are taken in that order); phase two every job's writes and
    /// idempotency record, and the COMMIT. False when the batch cannot run this way (a job is of
    /// another kind, or two jobs take one lock key: the second must see the first's writes) or a statement
    /// failed (rolled back): the batch then runs step by step.
    func runTwoPhase(_ jobs: [any PostgresJob], _ session: PostgresSession) -> Bool {
        let keys = jobs.flatMap(\.lockKeys)
        guard jobs.allSatisfy(\.canTwoPhase), Set(keys).count == keys.count else { return false }
        let plans = jobs.compactMap(\.twoPhasePlan)
        do {
            let reads = plans.flatMap(\.reads)
            try session.ensurePrepared(reads.map(\.sql))
            guard let read = try pipelineResults([.sql("BEGIN")] + reads.map(\.item), session) else { return false }
            var index = 1
            let next = plans.map { plan in
                defer { index += plan.reads.count }
                return plan.next(Array(read[index..<(index + plan.reads.count)]))
            }
            let writes = next.flatMap(\.calls)
            try session.ensurePrepared(writes.map(\.sql))
            guard let results = try pipelineResults(writes.map(\.item) + [.sql("COMMIT")], session) else { return false }

            var done: [(any PostgresJob, JobOutcome)] = []
            var refused: [(any PostgresJob, ServiceError)] = []
            var again: [any PostgresJob] = []
            index = 0
            for (job, step) in zip(jobs, next) {
                let mine = Array(results[index..<(index + step.calls.count)])
                index += step.calls.count
                switch step {
                case .write(let write):
                    do { done.append((job, try write.finish(mine))) } catch { refused.append((job, answer(for: error))) }
                case .again:
                    again.append(job)
                case .failed(let error, _):
                    refused.append((job, answer(for: error)))
                }
            }
            committed(done)
            for (job, error) in refused { job.complete(.failure(error)) }
            for job in again { runStepwise([job], session) }
            return true
        } catch {
            // The connection broke: nothing is known to be committed; the clients retry.
            let e = failed(error)
            jobs.forEach { $0.complete(.failure(e)) }
            return true
        }
    }
}
