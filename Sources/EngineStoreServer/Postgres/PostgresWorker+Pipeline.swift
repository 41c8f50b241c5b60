import LibPQ

/// The fast paths of a group commit: every job's statements go out in one pipeline, and the reads of
/// two-phase jobs (closes) with them, their writes in a second round trip with the COMMIT.
extension PostgresWorker {
    /// One call of a batch's first round trip: a job's own statements, one multi-row statement shared
    /// by consecutive jobs of a kind (their rows in job order, so the batch's lock order is kept), or a
    /// two-phase job's reads (its row locks; its writes and key record go in the second round trip).
    enum PipelineUnit {
        case own(job: Int, plan: PipelinePlan)
        case shared(statement: SQLText, jobs: [Int], plans: [BatchPlan])
        case reads(job: Int, plan: TwoPhasePlan)

        var resultCount: Int {
            switch self {
            case .own(_, let plan): plan.statements.count
            case .shared: 1
            case .reads(_, let plan): plan.reads.count
            }
        }
    }

    /// The calls of a batch, or nil when a job can run neither pipelined nor in two phases. A shared
    /// call holds each slot at most once: a second write to a slot goes to the next call, which runs
    /// after the first.
    static func pipelineUnits(_ jobs: [any PostgresJob]) -> [PipelineUnit]? {
        // A lone job runs its own statement (see the end): its shared form's row is not built at all.
        if jobs.count == 1, let own = jobs[0].pipelinePlan { return [.own(job: 0, plan: own)] }
        var units: [PipelineUnit] = []
        // The shared call being filled, kept apart from `units` until it closes: appending to an
        // array inside an enum case copied the array (and retained every plan's row) per job.
        var open: (statement: SQLText, jobs: [Int], plans: [BatchPlan])?
        var slots = Set<String>()
        func close() {
            guard let call = open else { return }
            open = nil
            // A call of one job gains nothing from sharing, and its own statement records the reply
            // with the COMMIT in the same round trip (no second one for the records): the lone
            // request's latency.
            if call.jobs.count == 1, let own = jobs[call.jobs[0]].pipelinePlan {
                units.append(.own(job: call.jobs[0], plan: own))
            } else {
                units.append(.shared(statement: call.statement, jobs: call.jobs, plans: call.plans))
            }
        }
        for (i, job) in jobs.enumerated() {
            if let batch = job.batchPlan {
                if open?.statement == batch.statement, slots.insert(batch.slot).inserted {
                    open!.jobs.append(i)
                    open!.plans.append(batch)
                } else {
                    close()
                    open = (batch.statement, [i], [batch])
                    slots = [batch.slot]
                }
                continue
            }
            close()
            if let plan = job.pipelinePlan {
                units.append(.own(job: i, plan: plan))
            } else if let plan = job.twoPhasePlan {
                units.append(.reads(job: i, plan: plan))
            } else {
                return nil
            }
        }
        close()
        return units
    }

    /// When every job can be pipelined or run in two phases, the whole batch takes one round trip
    /// (BEGIN, each call, COMMIT), or two when it has two-phase jobs or shared calls whose statement
    /// does not record its keys itself: the second carries the two-phase jobs' writes, those shared
    /// calls' idempotency records and replies (built in Swift from the returned rows) and the COMMIT.
    /// A statement that records its keys (trade events: `BatchableWrite.batchReplies`) needs none.
    /// A failed statement aborts the batch (rolled back, returns false: the batch runs the
    /// step-by-step way). Jobs whose results ask for the step-by-step path wrote nothing and run
    /// again on their own after the commit, as do retries of two-phase jobs (which replays them).
    /// The two-phase jobs' keys are looked up first, with no claim: a key recorded meanwhile fails
    /// the records statement (see `secondRound`).
    func runPipelined(_ jobs: [any PostgresJob], _ session: PostgresSession) -> Bool {
        guard let units = Self.pipelineUnits(jobs) else { return false }
        let twoPhaseKeys = units.compactMap { if case .reads(_, let plan) = $0 { plan.key } else { nil } }
        let twoPhase = !twoPhaseKeys.isEmpty
        // runTransaction split off the two-phase jobs whose reads would miss an earlier job's writes.
        assert(Self.repeatsApart(jobs) == nil, "a two-phase job shares a lock key with another job of the batch")
        // Shared calls whose statements do not record their keys: their records go in a second round trip.
        let shares = units.contains { if case .shared(_, _, let plans) = $0 { !plans[0].recordsKey } else { false } }
        do {
            var statements: [SQLText] = []
            var items: [PGPipelineItem] = [.sql("BEGIN")]
            var reads: [(at: Int, call: PGCall)] = []  // the two-phase jobs' reads, by their place in items
            // The two-phase jobs' keys recorded already (retries): they only read, then replay.
            if twoPhase {
                let seen = Idempotency.Seen(keys: twoPhaseKeys).call
                statements.append(seen.sql)
                items.append(seen.item)
            }
            for unit in units {
                switch unit {
                case .own(_, let plan):
                    statements += plan.statements.map(\.sql)
                    items += plan.statements.map(\.item)
                case .shared(let statement, _, let plans):
                    statements.append(statement)
                    items.append(.prepared(name: statement.rawValue, params: Self.arrayParameters(plans.map(\.row), of: statement)))
                case .reads(_, let plan):
                    reads += plan.reads.enumerated().map { (items.count + $0.offset, $0.element) }
                    statements += plan.reads.map(\.sql)
                    items += plan.reads.map(\.item)
                }
            }
            if !shares && !twoPhase { items.append(.sql("COMMIT")) }
            let merged = Self.readsMerged(items, reads: reads)
            pool.stats.mergedReads.add(merged.mergedCount, ordering: .relaxed)
            try session.ensurePrepared(statements + merged.statements)
            guard let sentResults = try pipelineResults(merged.items, session) else { return false }
            let results = merged.results(sentResults)

            var settled = Settled()
            var steps: [Step] = []
            let recorded = twoPhase ? Set(Idempotency.Seen.rows(results[1])) : []
            var index = twoPhase ? 2 : 1
            for unit in units {
                let mine = Array(results[index..<(index + unit.resultCount)])
                index += unit.resultCount
                switch unit {
                case .own(let j, let plan):
                    if let outcome = try? plan.finish(mine) { settled.done.append((j, outcome)) } else { settled.fallback.append(j) }
                case .shared(_, let members, let plans):
                    settled.shared(members, plans, mine[0], stats: pool.stats)
                case .reads(let j, let plan):
                    steps.append(Step(job: j, plan: plan, next: recorded.contains(plan.key) ? .again : plan.next(mine)))
                }
            }
            if shares || twoPhase {
                guard try secondRound(steps, &settled, session) else { return false }
            }
            committed(settled.done.sorted { $0.0 < $1.0 }.map { (jobs[$0.0], $0.1) })
            for (j, error) in settled.refused { jobs[j].complete(.failure(error)) }
            if !settled.fallback.isEmpty { pool.stats.pipelineFallbacks.add(1, ordering: .relaxed) }
            for j in (settled.fallback + settled.replays).sorted() { runStepwise([jobs[j]], session) }
            return true
        } catch {
            // The connection broke: nothing is known to be committed; the clients retry.
            let e = failed(error)
            jobs.forEach { $0.complete(.failure(e)) }
            return true
        }
    }

    /// What a batch's jobs (by index) came to before they are answered.
    struct Settled {
        var done: [(Int, JobOutcome)] = []
        var refused: [(Int, ServiceError)] = []
        /// Wrote nothing; run again step by step after the commit.
        var fallback: [Int] = []
        /// Two-phase retries of a recorded key: replayed step by step after the commit.
        var replays: [Int] = []
        /// The shared calls' idempotency records, written in the second round trip.
        var records: [(key: String, method: UInt16, digest: String, reply: [UInt8])] = []

        /// A shared call's jobs, from its result: a row per job that wrote, found by its `ord` (its place
        /// in the call) or, for a statement whose rows carry none, by its slot (each slot once per call).
        mutating func shared(_ members: [Int], _ plans: [BatchPlan], _ result: PGResult, stats: ServerStats) {
            stats.sharedCalls.add(1, ordering: .relaxed)
            stats.sharedRows.add(plans.count, ordering: .relaxed)
            var rowOf = [Int](repeating: -1, count: plans.count)
            if result.columnIndex("ord") >= 0 {
                for r in 0..<result.rowCount {
                    if let ord = PGRow(result, r).int("ord"), (1...plans.count).contains(Int(ord)) { rowOf[Int(ord) - 1] = r }
                }
            } else if let first = plans.first {
                let placeOf = Dictionary(plans.enumerated().map { ($1.slot, $0) }, uniquingKeysWith: { a, _ in a })
                for r in 0..<result.rowCount {
                    if let slot = first.slotOfRow(PGRow(result, r)), let k = placeOf[slot] { rowOf[k] = r }
                }
            }
            for (k, plan) in plans.enumerated() {
                // No row: this request wrote nothing (it runs again step by step).
                guard rowOf[k] >= 0 else { fallback.append(members[k]); continue }
                let outcome = plan.finish(PGRow(result, rowOf[k]))
                if !plan.recordsKey { records.append((plan.key, plan.method, plan.digest, outcome.reply)) }
                done.append((members[k], outcome))
            }
        }
    }

    /// A two-phase job of the batch, and what its reads came to.
    struct Step {
        let job: Int
        let plan: TwoPhasePlan
        let next: TwoPhasePlan.Next
    }

    /// The second round trip: a look-up of the keys of the two-phase jobs whose plan failed, their
    /// writes, one statement with every record (the shared calls' and the two-phase writes'), and the
    /// COMMIT. A record whose key is there already fails the statement: false, rolled back, and the
    /// batch runs step by step (which replays it). A failed plan whose key is recorded by now is
    /// replayed: its twin committed while this job waited on the rows it read.
    private func secondRound(_ steps: [Step], _ settled: inout Settled, _ session: PostgresSession) throws(PGError) -> Bool {
        let failedKeys = steps.compactMap { if case .failed = $0.next { $0.plan.key } else { nil } }
        var calls = failedKeys.isEmpty ? [] : [Idempotency.Seen(keys: failedKeys).call]
        calls += steps.flatMap(\.next.calls)
        // Every job's outbox rows, with one statement; each job gets its ids back in its intents' order.
        let intents = steps.flatMap { step -> [OutboxIntent] in if case .write(let write) = step.next { write.intents } else { [] } }
        let outboxAt = calls.count
        if !intents.isEmpty { calls.append(Outbox.Insert(intents: intents).call) }
        var records = settled.records
        for step in steps {
            if case .write(let write) = step.next { records.append((step.plan.key, step.plan.method, step.plan.digest, write.reply)) }
        }
        if !records.isEmpty { calls.append(Idempotency.RecordBatch(records: records).call) }
        let (sent, resultOf) = Self.rowsMerged(calls)
        try session.ensurePrepared(sent.map(\.sql))
        guard let merged = try pipelineResults(sent.map(\.item) + [.sql("COMMIT")], session) else { return false }
        let results = resultOf.map { merged[$0] }
        let twinsDone = failedKeys.isEmpty ? [] : Set(Idempotency.Seen.rows(results[0]))
        let outboxIDs = intents.isEmpty ? [] : Outbox.Insert.ids(results[outboxAt])
        assert(outboxIDs.count == intents.count, "an id per outbox intent")
        var index = failedKeys.isEmpty ? 0 : 1
        var idIndex = 0
        for step in steps {
            let mine = Array(results[index..<(index + step.next.calls.count)])
            index += step.next.calls.count
            switch step.next {
            case .write(let write):
                let ids = Array(outboxIDs[min(idIndex, outboxIDs.count)..<min(outboxIDs.count, idIndex + write.intents.count)])
                idIndex += write.intents.count
                do { settled.done.append((step.job, try write.finish(mine, ids))) } catch { settled.refused.append((step.job, answer(for: error))) }
            case .again:
                settled.replays.append(step.job)
            case .failed(let error):
                if twinsDone.contains(step.plan.key) { settled.replays.append(step.job) } else { settled.refused.append((step.job, answer(for: error))) }
            }
        }
        return true
    }

    /// Statements of phase two that several jobs of a batch run, with a multi-row form: the same
    /// parameters as arrays, one element per row. Each returns nothing, and writes rows that no other
    /// job of the batch touches and that no other transaction can be waiting for (a close's trades row
    /// has a fresh id; a trader's snapshot row is only written under its throttle lock).
    static let rowsForms: [SQLText: SQLText] = [.tradeInsert: .tradeInsertRows, .snapshotUpsert: .snapshotUpsertRows]

    /// `calls` with every call of a statement in `rowsForms` that occurs more than once merged into one
    /// call of its multi-row form, in the place of the first; `resultOf[i]` is the index of call i's
    /// result among the calls sent (the merged calls share their result, which holds no rows).
    static func rowsMerged(_ calls: [PGCall]) -> (calls: [PGCall], resultOf: [Int]) {
        var groups: [SQLText: [Int]] = [:]
        for (i, call) in calls.enumerated() where rowsForms[call.sql] != nil { groups[call.sql, default: []].append(i) }
        groups = groups.filter { $0.value.count > 1 }
        guard !groups.isEmpty else { return (calls, Array(calls.indices)) }
        var sent: [PGCall] = [], resultOf = [Int](repeating: 0, count: calls.count)
        var placed: [SQLText: Int] = [:]
        for (i, call) in calls.enumerated() {
            guard let members = groups[call.sql], let rows = rowsForms[call.sql] else {
                resultOf[i] = sent.count
                sent.append(call)
                continue
            }
            if let at = placed[call.sql] { resultOf[i] = at; continue }
            placed[call.sql] = sent.count
            resultOf[i] = sent.count
            sent.append(PGCall(sql: rows, bindings: arrayParameters(members.map { calls[$0].bindings }, of: rows)))
        }
        return (sent, resultOf)
    }

    /// Reads of phase one that several two-phase jobs of a batch run, with a multi-row form: the same
    /// parameters as arrays, returning `ord` (the call's place among the merged ones, from 1) and the
    /// read's own columns. The merged call goes last in the round trip, after every lock the batch
    /// takes (so it sees what each lock's previous holder committed); so a read belongs here only if
    /// no statement of round trip one writes what it reads (a snapshot's time: only phase two writes
    /// snapshots).
    static let readsForms: [SQLText: SQLText] = [.snapshotLast: .snapshotLastRows]

    /// A round trip's calls with the reads of `readsForms` that occur more than once merged.
    struct MergedReads {
        /// As sent: the calls not merged, in place, then one call per merged statement.
        let items: [PGPipelineItem]
        /// The merged statements (to prepare).
        let statements: [SQLText]
        /// Where call i's result is among the sent ones; -1 for a merged read.
        fileprivate let sentIndex: [Int]
        /// Each merged call: its place among the sent calls and the places of the calls it stands for.
        fileprivate let groups: [(at: Int, members: [Int])]

        var mergedCount: Int { groups.reduce(0) { $0 + $1.members.count } }

        /// The results as if every call had been sent on its own: a merged read gets its rows of the
        /// merged call's result.
        func results(_ sent: [PGResult]) -> [PGResult] {
            guard !groups.isEmpty else { return sent }
            var out = sentIndex.map { $0 >= 0 ? sent[$0] : nil }
            for group in groups {
                for (member, part) in zip(group.members, sent[group.at].parts(byOrdinal: "ord", count: group.members.count)) {
                    out[member] = part
                }
            }
            return out.map { $0! }
        }
    }

    /// `reads` are calls of `items` (by place, ascending) that may be merged. The merged calls go after
    /// the last item, so `items` must not end in COMMIT when there are reads (a two-phase batch commits
    /// in its second round trip).
    static func readsMerged(_ items: [PGPipelineItem], reads: [(at: Int, call: PGCall)]) -> MergedReads {
        var members: [SQLText: [(at: Int, call: PGCall)]] = [:]
        for read in reads where readsForms[read.call.sql] != nil { members[read.call.sql, default: []].append(read) }
        members = members.filter { $0.value.count > 1 }
        guard !members.isEmpty else { return MergedReads(items: items, statements: [], sentIndex: Array(items.indices), groups: []) }
        let merged = Set(members.values.joined().map(\.at))
        var sent: [PGPipelineItem] = [], sentIndex = [Int](repeating: -1, count: items.count)
        for (i, item) in items.enumerated() where !merged.contains(i) {
            sentIndex[i] = sent.count
            sent.append(item)
        }
        var groups: [(at: Int, members: [Int])] = [], statements: [SQLText] = []
        for (sql, calls) in members.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let rows = readsForms[sql]!
            groups.append((sent.count, calls.map(\.at)))
            statements.append(rows)
            sent.append(PGCall(sql: rows, bindings: arrayParameters(calls.map(\.call.bindings), of: rows)).item)
        }
        return MergedReads(items: sent, statements: statements, sentIndex: sentIndex, groups: groups)
    }

    /// The jobs of a committed pipelined or two-phase batch: their cache work is queued, then they are
    /// answered.
    func committed(_ done: [(any PostgresJob, JobOutcome)]) {
        guard !done.isEmpty else { return }
        pool.afterCommit(done.map(\.1)) {
            pool.stats.pipelinedJobs.add(done.count, ordering: .relaxed)
            for (job, outcome) in done { job.complete(.success(outcome)) }
        }
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

    /// The parameters of a multi-row call of `statement` (a shared call, a merged read or write):
    /// element k of array parameter i is `rows[k][i]`.
    static func arrayParameters(_ rows: [[String?]], of statement: SQLText) -> [String?] {
        let width = statement.parameterCount
        assert(rows.allSatisfy { $0.count == width }, "\(statement.rawValue) takes \(width) arrays")
        return (0..<width).map { i in pgArray(rows.map { $0[i] }) }
    }
}
