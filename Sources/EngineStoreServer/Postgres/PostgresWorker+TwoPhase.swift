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
        let plans = jobs.compactMap(\.twoPhasePlan)
        let keys = jobs.flatMap(\.lockKeys)
        guard plans.count == jobs.count, Set(keys).count == keys.count else { return false }
        do {
            var items: [PGPipelineItem] = [.sql("BEGIN")]
            var statements: [SQLText] = []
            for plan in plans {
                for call in plan.reads {
                    statements.append(call.sql)
                    items.append(.prepared(name: call.sql.rawValue, params: call.bindings))
                }
            }
            try session.ensurePrepared(statements)
            guard let reads = try pipelineResults(items, session) else { return false }

            var next: [TwoPhasePlan.Next] = []
            var index = 1
            items = []
            statements = []
            for plan in plans {
                let step = plan.next(Array(reads[index..<(index + plan.reads.count)]))
                index += plan.reads.count
                let calls: [PGCall]
                switch step {
                case .write(let write): calls = write.calls
                case .again: calls = []
                case .failed(_, let undo): calls = [undo]
                }
                for call in calls {
                    statements.append(call.sql)
                    items.append(.prepared(name: call.sql.rawValue, params: call.bindings))
                }
                next.append(step)
            }
            items.append(.sql("COMMIT"))
            try session.ensurePrepared(statements)
            guard let results = try pipelineResults(items, session) else { return false }

            var done: [(any PostgresJob, JobOutcome)] = []
            var refused: [(any PostgresJob, ServiceError)] = []
            var again: [any PostgresJob] = []
            index = 0
            for (job, step) in zip(jobs, next) {
                switch step {
                case .write(let write):
                    let mine = Array(results[index..<(index + write.calls.count)])
                    index += write.calls.count
                    do { done.append((job, try write.finish(mine))) } catch { refused.append((job, answer(for: error))) }
                case .again:
                    again.append(job)
                case .failed(let error, _):
                    index += 1
                    refused.append((job, answer(for: error)))
                }
            }
            if !done.isEmpty {
                pool.afterCommit(done.map(\.1))
                pool.stats.pipelinedJobs.add(done.count, ordering: .relaxed)
                for (job, outcome) in done { job.complete(.success(outcome)) }
            }
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
