import EngineStoreWire
import Foundation
import Hiredis
import Logging

/// The background side of the cache, on a thread of its own with its own Postgres and Redis
/// connections: the outbox relay, clearing outbox rows the direct path applied, Hydrate,
/// CheckConsistency (on demand and periodic) and the idempotency-key purge. Each job is a type of
/// its own (`Maintenance/`); this class owns the thread, the task queue and the timetable.
/// Safe with several instances: the relay claims rows with FOR UPDATE SKIP LOCKED, Hydrate takes a
/// Redis lock, and everything it writes is derived from Postgres.
final class CacheMaintenance: Sendable {
    enum Task: Sendable {
        case hydrate(HydrateRequest, ReplyTarget)
        case check(CheckConsistencyRequest, ReplyTarget)
    }

    struct Settings: Sendable {
        var conninfo: String
        var redis: RedisEndpoint
        var rebuilder: CacheRebuilder
        var instanceID: String
        /// Outbox rows younger than this are left to the direct path.
        var relayGraceMs: Int = 2000
        var relayIntervalMs: Int = 200
        var hydrateOnStart: Bool = true
        /// 0 = no periodic check.
        var checkIntervalSeconds: Int = 300
        var idempotencyRetentionHours: Int = 24
        var purgeIntervalMs: UInt64 = 600_000
        /// 0 = keep every tick.
        var tickRetentionDays: Int = 0
        var tickRetentionIntervalMs: UInt64 = 60_000
        /// nof0's materialized views (ViewRefresher, a thread of its own); 0 = never.
        var refreshViewsIntervalSeconds: Int = 60
        var hooks = TestHooks()
    }

    private let settings: Settings
    private let tasks = BlockingQueue<Task>()
    private let cleaner: OutboxCleaner
    private let stats: ServerStats
    let metrics: ServerMetrics?
    private let logger: Logger
    private let thread = WorkerThread(name: "engine-store-cache-maintenance")
    private let views: ViewRefresher

    init(settings: Settings, cleaner: OutboxCleaner, stats: ServerStats, metrics: ServerMetrics? = nil, logger: Logger) {
        self.metrics = metrics
        self.settings = settings
        self.cleaner = cleaner
        self.stats = stats
        self.logger = logger
        views = ViewRefresher(intervalSeconds: settings.refreshViewsIntervalSeconds, conninfo: settings.conninfo,
                              redis: settings.redis, logger: logger)
    }

    func start() {
        thread.start { [self] in Worker(owner: self).run() }
        views.start()
    }

    func submit(_ task: Task) { tasks.push(task) }

    func shutdown() {
        tasks.close()
        thread.join()
        views.shutdown()
    }

    /// The thread's state: its connections, its jobs and their timetable.
    private final class Worker {
        let owner: CacheMaintenance
        let connections: MaintenanceConnections
        let relay: OutboxRelay
        let cleanup: OutboxCleanup
        let hydrator: Hydrator
        let checker: ConsistencyChecker
        let purge: IdempotencyPurge
        let tickRetention: TickRetention
        let heapTrim = HeapTrim()
        var schedule: MaintenanceSchedule
        var hydrated = false

        init(owner: CacheMaintenance) {
            self.owner = owner
            let settings = owner.settings
            let connections = MaintenanceConnections(conninfo: settings.conninfo, redis: settings.redis, logger: owner.logger)
            self.connections = connections
            relay = OutboxRelay(connections: connections, cleaner: owner.cleaner, rebuilder: settings.rebuilder,
                                graceMs: settings.relayGraceMs, hooks: settings.hooks, metrics: owner.metrics)
            cleanup = OutboxCleanup(connections: connections, cleaner: owner.cleaner, metrics: owner.metrics)
            hydrator = Hydrator(connections: connections, rebuilder: settings.rebuilder, instanceID: settings.instanceID, hooks: settings.hooks)
            checker = ConsistencyChecker(connections: connections, rebuilder: settings.rebuilder, metrics: owner.metrics)
            purge = IdempotencyPurge(connections: connections, retentionHours: settings.idempotencyRetentionHours)
            tickRetention = TickRetention(connections: connections, retentionDays: settings.tickRetentionDays)
            schedule = MaintenanceSchedule(relayIntervalMs: settings.relayIntervalMs, purgeIntervalMs: settings.purgeIntervalMs,
                                           checkIntervalSeconds: settings.checkIntervalSeconds, now: monotonicNanos())
            if settings.tickRetentionDays > 0 {
                let interval = settings.tickRetentionIntervalMs * MaintenanceSchedule.nanosPerMs
                schedule.tickRetention = Periodic(everyNanos: interval,
                                                  firstNanos: monotonicNanos() + min(interval, MaintenanceSchedule.firstTickRetentionNanos))
            }
        }

        func run() {
            while true {
                let batch = owner.tasks.popBatch(max: MaintenanceSchedule.taskBatch, timeoutSeconds: MaintenanceSchedule.taskWaitSeconds)
                if batch.isEmpty && owner.tasks.isClosedAndEmpty { break }
                for task in batch { handle(task) }
                let now = monotonicNanos()
                cleanup.clearApplied()
                if !hydrated && owner.settings.hydrateOnStart, let s = connections.postgres(), let r = connections.redisConnection() {
                    hydrated = true
                    hydrator.warmUp(s, r)
                }
                if schedule.relay.fire(now) {
                    if !relay.run() { schedule.relay.postpone(until: now + MaintenanceSchedule.relayRetryAfterFailureNanos) }
                }
                if schedule.heapTrim.fire(now) { heapTrim.run() }
                if schedule.outboxDepth.fire(now) { cleanup.recordDepth() }
                if schedule.purge.fire(now) { purge.run() }
                if schedule.check.fire(now) { checker.runPeriodic() }
                if schedule.tickRetention.fire(now), tickRetention.run().more {
                    // Old ticks left after the pass's batch budget: carry on soon, between other jobs.
                    schedule.tickRetention.postpone(until: now + MaintenanceSchedule.tickRetentionBacklogNanos)
                }
                owner.stats.maintenancePasses.add(1, ordering: .relaxed)
            }
            cleanup.clearApplied()
        }

        /// Runs a Hydrate or CheckConsistency request.
        func handle(_ task: Task) {
            // Not started once its deadline passed (proto-spec §3.6).
            let target: ReplyTarget
            switch task { case .hydrate(_, let t), .check(_, let t): target = t }
            guard monotonicNanos() < target.deadlineNanos else {
                return target.fail(ServiceError(.deadlineExceeded, "deadline passed before the request ran", retryable: true))
            }
            guard let s = connections.postgres() else { return target.fail(ServiceError(.unavailable, "postgres unavailable")) }
            guard let r = connections.redisConnection() else { return target.fail(ServiceError(.unavailable, "redis unavailable")) }
            let (name, failure) = switch task {
            case .hydrate: ("hydrate", "hydrate failed")
            case .check: ("check", "consistency check failed")
            }
            do {
                switch task {
                case .hydrate(let request, _): target.send(try hydrator.run(request, s, r))
                case .check(let request, _): target.send(try checker.run(request, s, r))
                }
            } catch {
                connections.failed(error, name)
                target.fail(ServiceError(.unavailable, "\(failure): \(error)"))
            }
        }
    }
}
