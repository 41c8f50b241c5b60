import EngineStoreWire
import Foundation
import LibPQ
import Logging
import Synchronization

/// What a job produced: the bytes to answer with, and the Redis mutations to apply after the commit.
struct JobOutcome: Sendable {
    var reply: [UInt8]
    var cacheMutations: [CacheMutation] = []
    /// Outbox rows recorded with this write; cleared once the cache writer applied `cacheMutations`.
    var outboxIDs: [Int64] = []
    /// Cache writes that may be coalesced (market data), applied through the rate limiter.
    var rateLimited: [RateLimitedMutation] = []
    /// Cache work that succeeds or fails on its own (a stream entry): a declined key rebuild in
    /// `cacheMutations` must not send these rows to the relay too, or the event is added twice.
    var independentCacheWork: [(mutations: [CacheMutation], outboxIDs: [Int64])] = []
    /// Outbox rows the direct path never applies (whole-table documents such as the leaderboard):
    /// the relay rebuilds them from Postgres right after the commit.
    var relayOutboxIDs: [Int64] = []
    /// The reply was recorded earlier under the same idempotency key (sent with the `replayed` flag).
    var replayed = false
}

/// How a job runs in a pipelined batch: `statements` go out with the batch (BEGIN … COMMIT in one
/// round trip); `finish` turns their results into the outcome, or throws `PipelineFallback`.
struct PipelinePlan: Sendable {
    let statements: [(Statement, [String?])]
    let finish: @Sendable ([PGResult]) throws -> JobOutcome
}

/// A unit of Postgres work queued by an RPC handler.
protocol PostgresJob: Sendable {
    /// Monotonic deadline; a job still queued past it is answered deadline_exceeded and not run.
    var deadlineNanos: UInt64 { get }
    /// Jobs that write run inside a transaction shared with other queued jobs (group commit).
    var isTransactional: Bool { get }
    /// Runs the job. Inside a shared transaction it runs under a savepoint, so a thrown error
    /// rolls back only this job's statements.
    func execute(_ session: PostgresSession) throws -> JobOutcome
    /// Delivers the outcome (after commit) or an error to the waiting client.
    func complete(_ result: Result<JobOutcome, ServiceError>)
    /// Non-nil when the job can run in a pipelined batch.
    var pipelinePlan: PipelinePlan? { get }
    /// The request behind the job, for latency metrics.
    var target: ReplyTarget? { get }
    /// The rows the job locks, as `LockOrder` keys in the order it takes them (ascending).
    var lockKeys: [String] { get }
}

extension PostgresJob {
    var pipelinePlan: PipelinePlan? { nil }
    var target: ReplyTarget? { nil }
    var lockKeys: [String] { [] }
}

/// One global order for every row lock a write takes, so that transactions (group commits of many
/// requests, other instances) never wait on each other in a cycle: a deadlock costs
/// `deadlock_timeout` and fails the whole batch. A transaction takes its locks in ascending key
/// order; `rounds` splits a batch into transactions that each keep that order.
enum LockOrder {
    /// A position slot (its row lock, its unique open index entry).
    static func position(_ model: String, _ symbol: String) -> String { "p|" + model + "|" + symbol }
    /// The per-model snapshot throttle lock, taken before the model's position rows.
    static func snapshot(_ model: String) -> String { "p|" + model + "|" }
    static func traderState(_ trader: String) -> String { "t|" + trader }
    static func analytics(_ model: String) -> String { "a|" + model }
    static func tradeEvent(_ id: String) -> String { "e|" + id }
    /// Market-data rows are locked in SQL's sort order, which Swift cannot reproduce: such a job
    /// spans the whole market-data key space, so it shares a transaction with no other one.
    static let marketData = ["m|", "m|\u{10FFFF}"]

    /// Groups jobs into transactions, in order, such that inside each the lock keys only ascend.
    static func rounds(_ jobs: [any PostgresJob]) -> [[any PostgresJob]] {
        if jobs.count < 2 { return jobs.isEmpty ? [] : [jobs] }  // one job keeps its own order
        // Keys computed once per job (a snapshot's keys take a sort to build).
        var rest = jobs.map { (keys: $0.lockKeys, job: $0) }.sorted { ($0.keys.first ?? "") < ($1.keys.first ?? "") }
        var rounds: [[any PostgresJob]] = []
        while !rest.isEmpty {
            var round: [any PostgresJob] = []
            var later: [(keys: [String], job: any PostgresJob)] = []
            var highest = ""
            for entry in rest {
                guard let first = entry.keys.first else { round.append(entry.job); continue }
                if first >= highest {
                    round.append(entry.job)
                    highest = max(highest, entry.keys.last!)
                } else {
                    later.append(entry)
                }
            }
            rounds.append(round)
            rest = later
        }
        return rounds
    }
}

/// Postgres worker threads, each owning one connection, fed from one queue.
/// Writes that arrive together are committed together: a worker takes every queued job (up to
/// `maxBatch`), runs each under a savepoint in one transaction, commits once, and only then
/// answers the clients and hands the cache mutations to the `CacheWriter`.
final class PostgresPool: Sendable {
    private let queue = BlockingQueue<any PostgresJob>()
    private let conninfo: String
    private let size: Int
    private let maxBatch: Int
    private let cache: CacheWriter
    private var hooks: TestHooks { cache.hooks }
    let limiter: CacheRateLimiter
    private let logger: Logger
    private let workers: [WorkerThread]
    /// Reconnect backoff of a worker after a failure: doubles from the first delay up to the last.
    static let reconnectInitialMs: UInt64 = 100
    static let reconnectMaxMs: UInt64 = 5000
    /// A session idle for longer than this is checked with a round trip before it is used.
    static let idleCheckNanos: UInt64 = 1_000_000_000
    static let connectTimeoutSeconds = 3

    let stats: ServerStats
    let metrics: ServerMetrics?
    /// When a worker last reconnected after a failure: lets the others skip the rest of their backoff.
    let recoveredAt = Atomic<UInt64>(0)
    let connectedWorkers = Atomic<Int>(0)
    let watchdog: PostgresWatchdog

    init(conninfo: String, size: Int, maxBatch: Int, cache: CacheWriter, limiter: CacheRateLimiter, stats: ServerStats,
         metrics: ServerMetrics? = nil, timeoutMs: UInt64 = 0, logger: Logger) {
        self.watchdog = PostgresWatchdog(limitMs: timeoutMs, logger: logger)
        self.stats = stats
        self.metrics = metrics
        self.limiter = limiter
        self.conninfo = conninfo
        self.size = max(1, size)
        self.maxBatch = max(1, maxBatch)
        self.cache = cache
        self.logger = logger
        self.workers = (0..<max(1, size)).map { WorkerThread(name: "engine-store-pg-\($0)") }
    }

    func start() {
        watchdog.start()
        for (i, worker) in workers.enumerated() {
            worker.start { [self] in Worker(pool: self, index: i).run() }
        }
    }

    func submit(_ job: any PostgresJob) { queue.push(job) }

    var queueDepth: Int { queue.count }

    /// Hands a commit's cache work on: plain mutations to the writer, coalescable ones to the limiter.
    func afterCommit(_ outcomes: [JobOutcome]) {
        stats.commits.add(1, ordering: .relaxed)
        metrics?.groupCommitTransactions.increment()
        metrics?.groupCommitJobs.increment(by: outcomes.count)
        hooks.workerDidCommit?(outcomes.flatMap { $0.cacheMutations.map(\.key) })
        cache.applied.rebuildSoon(outcomes.flatMap(\.relayOutboxIDs))
        cache.enqueue(outcomes.flatMap { [($0.cacheMutations, $0.outboxIDs)] + $0.independentCacheWork })
        limiter.submit(outcomes.flatMap(\.rateLimited))
    }

    /// Finishes the queued jobs, then stops the workers.
    func shutdown() {
        queue.close()
        for worker in workers { worker.join() }
        watchdog.stop()
    }

    /// One worker thread's state. Lives on that thread only.
    private final class Worker {
        let pool: PostgresPool
        let index: Int
        var session: PostgresSession?
        var backoff = Backoff(initialMs: PostgresPool.reconnectInitialMs, maxMs: PostgresPool.reconnectMaxMs)
        var lastUsedNanos: UInt64 = 0
        var lastFailureNanos: UInt64 = 0
        var logger: Logger

        init(pool: PostgresPool, index: Int) {
            self.pool = pool
            self.index = index
            self.logger = pool.logger
            logger[metadataKey: "worker"] = "\(index)"
        }

        func run() {
            while true {
                let jobs = pool.queue.popBatch(max: pool.maxBatch, timeoutSeconds: 1)
                if jobs.isEmpty {
                    if pool.queue.isClosedAndEmpty { break }
                    // Idle: a worker that lost its connection reconnects now, not on the next request.
                    if session == nil { _ = liveSession() }
                    continue
                }
                process(jobs)
            }
            if session != nil { setConnected(false) }
        }

        var connected = false
        func setConnected(_ value: Bool) {
            guard value != connected else { return }
            connected = value
            let n = pool.connectedWorkers.add(value ? 1 : -1, ordering: .relaxed).newValue
            pool.metrics?.postgresConnectedWorkers.record(n)
        }

        /// Gets a live session, reconnecting at most once per backoff period so that during an
        /// outage requests fail fast instead of each waiting for a connect timeout.
        func liveSession() -> PostgresSession? {
            let now = monotonicNanos()
            defer { lastUsedNanos = now }
            if let session {
                // After a quiet spell the server may have gone away (a restart): find out with a cheap
                // round trip and reconnect at once, instead of failing the first batch on a dead socket.
                guard now - lastUsedNanos > PostgresPool.idleCheckNanos else { return session }
                pool.watchdog.arm(worker: index, fd: session.connection.socket)
                let alive = (try? session.exec("SELECT 1")) != nil
                pool.watchdog.disarm(worker: index)
                if alive { return session }
                self.session = nil
                setConnected(false)
                backoff.reset()  // try at once (the delay is the first one already: the last connect succeeded)
            }
            // Back off during an outage, but not once another worker has got through again.
            guard backoff.isDue(monotonicNanos()) || pool.recoveredAt.load(ordering: .relaxed) > lastFailureNanos else { return nil }
            do {
                let connection = try PGConnection(conninfo: pool.conninfo, connectTimeoutSeconds: PostgresPool.connectTimeoutSeconds)
                let s = PostgresSession(connection: connection)
                session = s
                setConnected(true)
                if lastFailureNanos > 0 { pool.recoveredAt.store(monotonicNanos(), ordering: .relaxed) }
                if backoff.delayMs > backoff.initialMs { logger.info("postgres reconnected") }
                backoff.reset()
                return s
            } catch {
                connectionLost(error)
                return nil
            }
        }

        func connectionLost(_ error: PGError) {
            session = nil
            setConnected(false)
            logger.warning("postgres unavailable", metadata: [
                "reason": "postgres_unavailable", "error": "\(error.message)", "retry_in_ms": "\(backoff.delayMs)",
            ])
            lastFailureNanos = monotonicNanos()
            backoff.next(now: lastFailureNanos)
        }

        func process(_ all: [any PostgresJob]) {
            let now = monotonicNanos()
            defer {
                // Database time of the batch, attributed to each request in it.
                let spent = monotonicNanos() &- now
                for job in all { if let t = job.target { pool.metrics?.method(t.method)?.database.recordNanoseconds(Int64(clamping: spent)) } }
            }
            for job in all {
                if let t = job.target { pool.metrics?.method(t.method)?.queue.recordNanoseconds(Int64(clamping: now &- t.receivedNanos)) }
            }
            var live: [any PostgresJob] = []
            live.reserveCapacity(all.count)
            for job in all {
                if job.deadlineNanos <= now {
                    job.complete(.failure(ServiceError(.deadlineExceeded, "deadline passed before the request ran; nothing was written", retryable: true)))
                } else {
                    live.append(job)
                }
            }
            guard !live.isEmpty else { return }
            guard let session = liveSession() else {
                let e = ServiceError(.unavailable, "postgres unavailable; retry with the same idempotency key")
                live.forEach { $0.complete(.failure(e)) }
                return
            }
            // The whole batch runs under the watchdog; `guarded` keeps the connection (and so its
            // descriptor) alive until the watchdog is disarmed.
            let guarded = session
            pool.watchdog.arm(worker: index, fd: guarded.connection.socket)
            defer { pool.watchdog.disarm(worker: index); withExtendedLifetime(guarded) {} }
            let transactional = live.filter(\.isTransactional)
            for job in live where !job.isTransactional {
                runStandalone(job, session)
                if self.session == nil { break }
            }
            if !transactional.isEmpty {
                for round in LockOrder.rounds(transactional) { runTransaction(round) }
            }
        }

        /// One group commit: pipelined when every job can be, else step by step.
        func runTransaction(_ jobs: [any PostgresJob]) {
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
            if jobs.count == 1 {
                runSingle(jobs[0], session)
            } else {
                runGroup(jobs, session)
            }
        }

        func runStandalone(_ job: any PostgresJob, _ session: PostgresSession) {
            do {
                let outcome = try job.execute(session)
                pool.afterCommit([outcome])
                job.complete(.success(outcome))
            } catch {
                job.complete(.failure(map(error)))
            }
        }

        /// One job in its own transaction.
        func runSingle(_ job: any PostgresJob, _ session: PostgresSession) {
            do {
                try session.exec("BEGIN")
                let outcome: JobOutcome
                do {
                    outcome = try job.execute(session)
                } catch {
                    try? session.exec("ROLLBACK")
                    job.complete(.failure(map(error)))
                    return
                }
                try session.exec("COMMIT")
                // Cache mutations are queued before the client hears back, so a client that waits for
                // its ack before the next write sees the cache mutations applied in the same order.
                pool.afterCommit([outcome])
                job.complete(.success(outcome))
            } catch {
                job.complete(.failure(map(error)))
            }
        }

        /// The fast path: when every job can be pipelined, the whole batch — BEGIN, each job's
        /// statement, COMMIT — takes one round trip. A failed statement aborts the batch (rolled back,
        /// returns false: the batch runs the step-by-step way). Jobs whose results ask for the
        /// step-by-step path wrote nothing and run again on their own after the commit.
        func runPipelined(_ jobs: [any PostgresJob], _ session: PostgresSession) -> Bool {
            let plans = jobs.compactMap(\.pipelinePlan)
            guard plans.count == jobs.count else { return false }
            do {
                try session.ensurePrepared(plans.flatMap { $0.statements.map(\.0) })
                var items: [PGPipelineItem] = [.sql("BEGIN")]
                for plan in plans {
                    for (statement, params) in plan.statements { items.append(.prepared(name: statement.name, params: params)) }
                }
                items.append(.sql("COMMIT"))
                var results: [PGResult] = []
                results.reserveCapacity(items.count)
                for outcome in try session.connection.pipeline(items) {
                    guard case .ok(let r) = outcome else {
                        if case .failed(let e) = outcome, e.kind == .connection { throw e }
                        _ = try? session.exec("ROLLBACK")
                        pool.stats.pipelineFallbacks.add(1, ordering: .relaxed)
                        return false
                    }
                    results.append(r)
                }
                var done: [(any PostgresJob, JobOutcome)] = []
                var again: [any PostgresJob] = []
                var index = 1
                for (job, plan) in zip(jobs, plans) {
                    let mine = Array(results[index..<(index + plan.statements.count)])
                    index += plan.statements.count
                    if let outcome = try? plan.finish(mine) { done.append((job, outcome)) } else { again.append(job) }
                }
                if !done.isEmpty {
                    pool.afterCommit(done.map(\.1))
                    pool.stats.pipelinedJobs.add(done.count, ordering: .relaxed)
                    for (job, outcome) in done { job.complete(.success(outcome)) }
                }
                if !again.isEmpty {
                    pool.stats.pipelineFallbacks.add(1, ordering: .relaxed)
                    for job in again { runSingle(job, session) }
                }
                return true
            } catch {
                // The connection broke: nothing is known to be committed; the clients retry.
                let e = map(error)
                jobs.forEach { $0.complete(.failure(e)) }
                return true
            }
        }

        /// Several jobs in one transaction, each under a savepoint so one failure stays its own.
        func runGroup(_ jobs: [any PostgresJob], _ session: PostgresSession) {
            var outcomes: [(any PostgresJob, JobOutcome)] = []
            outcomes.reserveCapacity(jobs.count)
            var reached = 0  // jobs[..<reached] have either an outcome or their own error answer
            do {
                // BEGIN and each savepoint change ride in one simple-query round trip.
                var pending = "BEGIN; SAVEPOINT job"
                for job in jobs {
                    try session.exec(pending)
                    do {
                        let outcome = try job.execute(session)
                        pending = "RELEASE SAVEPOINT job"
                        outcomes.append((job, outcome))
                    } catch let error as PGError where error.kind == .connection {
                        throw error
                    } catch {
                        pending = "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job"
                        job.complete(.failure(map(error)))
                    }
                    pending += reached == jobs.count - 1 ? "; COMMIT" : "; SAVEPOINT job"
                    reached += 1
                }
                try session.exec(pending)
            } catch {
                try? session.exec("ROLLBACK")
                let e = map(error)
                for (job, _) in outcomes { job.complete(.failure(e)) }
                for job in jobs[reached...] { job.complete(.failure(e)) }
                return
            }
            pool.afterCommit(outcomes.map(\.1))
            for (job, outcome) in outcomes { job.complete(.success(outcome)) }
        }

        func map(_ error: any Error) -> ServiceError {
            if let e = error as? ServiceError { return e }
            if let e = error as? PGError {
                if e.kind == .connection {
                    connectionLost(e)
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
}
