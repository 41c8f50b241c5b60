import LibPQ
import Logging

/// One Postgres worker thread's state: its connection, reconnect backoff and batches. Lives on that
/// thread only.
final class PostgresWorker {
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
        let queue = pool.queues[index]
        while true {
            let jobs = queue.popBatch(max: pool.maxBatch, timeoutSeconds: 1)
            if jobs.isEmpty {
                if queue.isClosedAndEmpty { break }
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
        pool.connectedWorkers.change(by: value ? 1 : -1)
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
}
