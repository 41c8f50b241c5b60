import LibPQ

/// The fast path of a group commit: every job's statements go out in one pipeline.
extension PostgresWorker {
    /// One call of a pipelined batch: a job's own statements, or one multi-row statement shared by
    /// consecutive jobs of a kind (their rows in job order, so the batch's lock order is kept).
    enum PipelineUnit {
        case own(job: Int, plan: PipelinePlan)
        case shared(statement: SQLText, jobs: [Int], plans: [BatchPlan])

        var resultCount: Int {
            switch self {
            case .own(_, let plan): plan.statements.count
            case .shared: 1
            }
        }
    }

    /// The calls of a batch, or nil when a job cannot be pipelined. A shared call holds each slot at
    /// most once: a second write to a slot goes to the next call, which runs after the first.
    static func pipelineUnits(_ jobs: [any PostgresJob]) -> [PipelineUnit]? {
        var units: [PipelineUnit] = []
        var slots = Set<String>()
        for (i, job) in jobs.enumerated() {
            if let batch = job.batchPlan {
                if case .shared(let statement, var members, var plans) = units.last, statement == batch.statement,
                   slots.insert(batch.slot).inserted {
                    members.append(i)
                    plans.append(batch)
                    units[units.count - 1] = .shared(statement: statement, jobs: members, plans: plans)
                } else {
                    units.append(.shared(statement: batch.statement, jobs: [i], plans: [batch]))
                    slots = [batch.slot]
                }
            } else if let plan = job.pipelinePlan {
                units.append(.own(job: i, plan: plan))
            } else {
                return nil
            }
        }
        // A call of one job gains nothing from sharing, and its own statement records the reply with
        // the COMMIT in the same round trip (no second one for the records): the lone request's latency.
        return units.map { unit in
            guard case .shared(_, let members, _) = unit, members.count == 1, let own = jobs[members[0]].pipelinePlan else { return unit }
            return .own(job: members[0], plan: own)
        }
    }

    /// When every job can be pipelined, the whole batch takes one round trip (BEGIN, each call,
    /// COMMIT), or two when it has shared calls: their idempotency records and replies, built in
    /// Swift from the returned rows, go with the COMMIT. A failed statement aborts the batch (rolled
    /// back, returns false: the batch runs the step-by-step way). Jobs whose results ask for the
    /// step-by-step path wrote nothing and run again on their own after the commit.
    func runPipelined(_ jobs: [any PostgresJob], _ session: PostgresSession) -> Bool {
        guard let units = Self.pipelineUnits(jobs) else { return false }
        let shares = units.contains { if case .shared = $0 { true } else { false } }
        do {
            var statements: [SQLText] = []
            var items: [PGPipelineItem] = [.sql("BEGIN")]
            for unit in units {
                switch unit {
                case .own(_, let plan):
                    statements += plan.statements.map(\.sql)
                    items += plan.statements.map(\.item)
                case .shared(let statement, _, let plans):
                    statements.append(statement)
                    items.append(.prepared(name: statement.rawValue, params: Self.columns(plans, statement)))
                }
            }
            if shares { statements.append(Idempotency.RecordBatch.sql) } else { items.append(.sql("COMMIT")) }
            try session.ensurePrepared(statements)
            guard let results = try pipelineResults(items, session) else { return false }

            var done: [(any PostgresJob, JobOutcome)] = []
            var again: [any PostgresJob] = []
            var records: [(key: String, method: UInt16, digest: String, reply: [UInt8])] = []
            var index = 1
            for unit in units {
                let mine = results[index..<(index + unit.resultCount)]
                index += unit.resultCount
                switch unit {
                case .own(let j, let plan):
                    if let outcome = try? plan.finish(Array(mine)) { done.append((jobs[j], outcome)) } else { again.append(jobs[j]) }
                case .shared(_, let members, let plans):
                    pool.stats.sharedCalls.add(1, ordering: .relaxed)
                    pool.stats.sharedRows.add(plans.count, ordering: .relaxed)
                    let result = mine[mine.startIndex]
                    var rowOf = [Int](repeating: -1, count: plans.count)
                    for r in 0..<result.rowCount {
                        if let ord = PGRow(result, r).int("ord"), (1...plans.count).contains(Int(ord)) { rowOf[Int(ord) - 1] = r }
                    }
                    for (k, plan) in plans.enumerated() {
                        // No row: this request wrote nothing (it runs again step by step).
                        guard rowOf[k] >= 0 else { again.append(jobs[members[k]]); continue }
                        let outcome = plan.finish(PGRow(result, rowOf[k]))
                        records.append((plan.key, plan.method, plan.digest, outcome.reply))
                        done.append((jobs[members[k]], outcome))
                    }
                }
            }
            if shares {
                let commit: [PGPipelineItem] = [
                    .prepared(name: Idempotency.RecordBatch.sql.rawValue, params: Idempotency.RecordBatch(records: records).bindings),
                    .sql("COMMIT"),
                ]
                guard try pipelineResults(commit, session) != nil else { return false }
            }
            committed(done)
            if !again.isEmpty {
                pool.stats.pipelineFallbacks.add(1, ordering: .relaxed)
                for job in again { runStepwise([job], session) }
            }
            return true
        } catch {
            // The connection broke: nothing is known to be committed; the clients retry.
            let e = failed(error)
            jobs.forEach { $0.complete(.failure(e)) }
            return true
        }
    }

    /// The jobs of a committed pipelined or two-phase batch: their cache work is queued, then they are
    /// answered.
    func committed(_ done: [(any PostgresJob, JobOutcome)]) {
        guard !done.isEmpty else { return }
        pool.afterCommit(done.map(\.1))
        pool.stats.pipelinedJobs.add(done.count, ordering: .relaxed)
        for (job, outcome) in done { job.complete(.success(outcome)) }
    }

    /// The results of a pipeline, or nil when a statement failed: the transaction is then rolled
    /// back and counted as a fallback. A broken connection throws.
    func pipelineResults(_ items: [PGPipelineItem], _ session: PostgresSession) throws(PGError) -> [PGResult]? {
        do {
            return try session.runAll(items)
        } catch where error.kind != .connection {
            _ = try? session.exec("ROLLBACK")
            pool.stats.pipelineFallbacks.add(1, ordering: .relaxed)
            return nil
        }
    }

    /// A shared call's parameters: element k of array parameter i is `plans[k].row[i]`.
    static func columns(_ plans: [BatchPlan], _ statement: SQLText) -> [String?] {
        let width = statement.parameterCount
        assert(plans.allSatisfy { $0.row.count == width }, "\(statement.rawValue) takes \(width) arrays")
        return (0..<width).map { i in pgArray(plans.map { $0.row[i] }) }
    }
}
