import Foundation
import LibPQ
import Logging
import Synchronization

/// Postgres worker threads, each owning one connection, fed from one queue.
/// Writes that arrive together are committed together: a worker takes every queued job (up to
/// `maxBatch`), runs each under a savepoint in one transaction, commits once, and only then
/// answers the clients and hands the cache mutations to the `CacheWriter`.
final class PostgresPool: Sendable {
    /// One queue per worker. A write goes to the worker of its first lock key's partition (a model's
    /// positions and snapshots, one trader's state: `LockOrder.partition`), so two
    /// workers of one instance never wait on each other's row locks. Lock waits, not CPU, capped
    /// throughput (issue 15: Lock:transactionid was the top wait event with 4 workers). Jobs without
    /// lock keys (reads, pings) and market data (`LockOrder.pinsWorker`) go round robin.
    let queues: [BlockingQueue<any PostgresJob>]
    private let nextQueue = Atomic<Int>(0)
    let conninfo: String
    private let size: Int
    let maxBatch: Int
    private let cache: CacheWriter
    private var hooks: TestHooks { cache.hooks }
    let limiter: CacheRateLimiter
    let logger: Logger
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
    let connectedWorkers: ConnectedWorkerCount
    let watchdog: PostgresWatchdog

    init(conninfo: String, size: Int, maxBatch: Int, cache: CacheWriter, limiter: CacheRateLimiter, stats: ServerStats,
         metrics: ServerMetrics? = nil, timeoutMs: UInt64 = 0, logger: Logger) {
        self.watchdog = PostgresWatchdog(limitMs: timeoutMs, logger: logger)
        self.stats = stats
        self.metrics = metrics
        self.connectedWorkers = ConnectedWorkerCount { metrics?.postgresConnectedWorkers.record($0) }
        self.limiter = limiter
        self.conninfo = conninfo
        self.size = max(1, size)
        self.maxBatch = max(1, maxBatch)
        self.cache = cache
        self.logger = logger
        self.workers = (0..<max(1, size)).map { WorkerThread(name: "engine-store-pg-\($0)") }
        self.queues = (0..<max(1, size)).map { _ in BlockingQueue<any PostgresJob>() }
    }

    func start() {
        watchdog.start()
        for (i, worker) in workers.enumerated() {
            worker.start { [self] in PostgresWorker(pool: self, index: i).run() }
        }
    }

    func submit(_ job: any PostgresJob) {
        let index = job.lockKeys.first.flatMap { LockOrder.pinsWorker($0) ? LockOrder.partition($0, of: queues.count) : nil }
            ?? nextQueue.wrappingAdd(1, ordering: .relaxed).oldValue.magnitude % UInt(queues.count)
        queues[Int(index)].push(job)
    }

    var queueDepth: Int { queues.reduce(0) { $0 + $1.count } }

    /// Counts one committed transaction of these jobs, queues their cache work, runs `answer` (the
    /// replies), then wakes the cache writer. The work is queued before any reply, so a client that
    /// waits for its ack finds its cache writes ordered before its next request's; the wake-up comes
    /// after, off the replies' path.
    func afterCommit(_ outcomes: [JobOutcome], answer: () -> Void) {
        stats.commits.add(1, ordering: .relaxed)
        metrics?.groupCommitTransactions.increment()
        metrics?.groupCommitJobs.increment(by: outcomes.count)
        hooks.workerDidCommit?(outcomes.flatMap { $0.cacheMutations.map(\.key) })
        handOff(outcomes, wake: false)
        answer()
        cache.wake()
    }

    /// Hands cache work on: plain mutations to the writer, coalescable ones to the limiter. A read's
    /// refill comes here without `afterCommit`: it committed nothing.
    func handOff(_ outcomes: [JobOutcome], wake: Bool = true) {
        cache.applied.rebuildSoon(outcomes.flatMap(\.relayOutboxIDs))
        cache.enqueue(Self.cacheWrites(outcomes), wake: wake)
        limiter.submit(outcomes.flatMap(\.rateLimited))
    }

    /// The cache writer's writes for these outcomes, in order. The requests of one shared position
    /// statement share its one outbox row and come in a run (a call's jobs are consecutive, and the
    /// batch answers in job order): they become one write, so the row is deleted only when Redis took
    /// every request's mutations, and a declined or refused one leaves it, whole, to the relay.
    /// Stream entries, which have rows of their own, stay after their request's keys.
    static func cacheWrites(_ outcomes: [JobOutcome]) -> [(mutations: [CacheMutation], outboxIDs: [Int64])] {
        var writes: [(mutations: [CacheMutation], outboxIDs: [Int64])] = []
        writes.reserveCapacity(outcomes.count)
        var keysAt = -1  // the last request's keys write
        for outcome in outcomes {
            if keysAt >= 0, !outcome.outboxIDs.isEmpty, writes[keysAt].outboxIDs == outcome.outboxIDs {
                writes[keysAt].mutations += outcome.cacheMutations
            } else {
                keysAt = writes.count
                writes.append((outcome.cacheMutations, outcome.outboxIDs))
            }
            writes += outcome.independentCacheWork
        }
        // A shared call's saves of one model: one script call (CacheMutation.coalesced).
        for i in writes.indices where writes[i].mutations.count > 1 {
            writes[i].mutations = CacheMutation.coalesced(writes[i].mutations)
        }
        return writes
    }

    /// Finishes the queued jobs, then stops the workers.
    func shutdown() {
        for queue in queues { queue.close() }
        for worker in workers { worker.join() }
        watchdog.stop()
    }
}

/// How many workers hold a live connection, and the gauge that shows it. The count changes and is
/// recorded under one lock: with an atomic add and a separate record, two workers connecting at once
/// could record 3 then 2, leaving the gauge one short until the next change (seen in CI).
final class ConnectedWorkerCount: Sendable {
    private let count = Mutex<Int>(0)
    private let record: @Sendable (Int) -> Void

    init(record: @escaping @Sendable (Int) -> Void) { self.record = record }

    func change(by delta: Int) {
        count.withLock { n in
            n += delta
            record(n)
        }
    }

    var value: Int { count.withLock { $0 } }
}
