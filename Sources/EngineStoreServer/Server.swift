import Foundation
import Glibc
import LibPQ
import Logging
import Synchronization

/// The EngineStore server: migrations, the Postgres pool, the cache writer and the event loop.
///
///     let server = try EngineStoreServer(configuration: config, logger: logger)
///     try server.start()          // binds the socket; returns once it accepts connections
///     server.shutdown()           // graceful: stop accepting, finish in-flight, close
///     server.waitUntilStopped()
public final class EngineStoreServer: Sendable {
    public let configuration: ServerConfiguration
    private let logger: Logger
    private let mailbox: Mailbox
    private let cache: CacheWriter
    private let reader: CacheReader
    private let limiter: CacheRateLimiter
    private let postgres: PostgresPool
    let stats = ServerStats()
    /// Jobs waiting for a Postgres worker (tests use it to know a batch is queued).
    var postgresQueueDepth: Int { postgres.queueDepth }
    let metrics = ServerMetrics()
    /// The HTTP metrics port once started (with `metricsListen`).
    public let metricsPort = Mutex<UInt16?>(nil)
    private let state = Mutex<State>(.idle)
    /// Runs the event loop, then stops the other threads; finished once the server has stopped.
    private let loopThread = WorkerThread(name: "engine-store-loop")
    private let maintenance: CacheMaintenance

    private enum State { case idle, running, stopping, stopped }

    public init(configuration: ServerConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.mailbox = try Mailbox()
        self.cache = CacheWriter(endpoint: configuration.redis, metrics: metrics, hooks: configuration.testHooks, logger: logger)
        self.reader = CacheReader(endpoint: configuration.redis, logger: logger)
        let keys = CacheKeys(namespace: configuration.namespace)
        var settings = CacheMaintenance.Settings(
            conninfo: configuration.postgresURL, redis: configuration.redis,
            rebuilder: CacheRebuilder(keys: keys, ttl: configuration.ttl, streamMaxLength: configuration.streamMaxLength),
            instanceID: configuration.instanceID)
        settings.hydrateOnStart = configuration.hydrateOnStart
        settings.checkIntervalSeconds = configuration.consistencyCheckIntervalSeconds
        settings.relayGraceMs = configuration.outboxGraceMs
        settings.idempotencyRetentionHours = configuration.idempotencyRetentionHours
        settings.purgeIntervalMs = configuration.idempotencyPurgeIntervalMs
        settings.tickRetentionDays = configuration.tickRetentionDays
        settings.tickRetentionIntervalMs = configuration.tickRetentionIntervalMs
        settings.hooks = configuration.testHooks
        settings.refreshViewsIntervalSeconds = configuration.refreshViewsIntervalSeconds
        self.maintenance = CacheMaintenance(settings: settings, cleaner: cache.applied, stats: stats, metrics: metrics, logger: logger)
        self.limiter = CacheRateLimiter(intervalMs: configuration.marketCacheIntervalMs, writer: cache)
        self.postgres = PostgresPool(conninfo: configuration.postgresURL, size: configuration.postgresConnections,
                                     maxBatch: configuration.maxBatch, cache: cache, limiter: limiter, stats: stats, metrics: metrics,
                                     timeoutMs: configuration.postgresTimeoutMs, logger: logger)
    }

    /// Applies migrations (unless disabled), binds the socket and starts the threads.
    /// Throws for what is fatal at start: bad configuration, a live server on the socket, failed migrations.
    public func start() throws {
        try state.withLock { s in
            guard case .idle = s else { throw ConfigurationError("server already started") }
            s = .running
        }
        signal(SIGPIPE, SIG_IGN)
        if configuration.migrate {
            let applied = try Migrations.apply(conninfo: configuration.postgresURL)
            logger.info("migrations applied", metadata: ["applied": "\(applied)", "postgres": "\(redactConnectionString(configuration.postgresURL))"])
        }
        if let warning = try UnixSocket.checkDirectory(of: configuration.socketPath,
                                                       allowWorldWritable: configuration.allowWorldWritableDirectory) {
            logger.notice("\(warning)")
        }
        // Room for --max-connections clients plus the backends: raise the soft descriptor limit toward the
        // hard one. The event loop warns (reason=fd_limit) if it still leaves room for fewer clients.
        let nofile = DescriptorLimits.raise(toward: DescriptorLimits.needed(
            maxConnections: configuration.maxConnections, postgresConnections: configuration.postgresConnections))
        if nofile.after > nofile.before {
            logger.notice("raised the descriptor limit", metadata: ["nofile": "\(nofile.after)", "was": "\(nofile.before)"])
        }
        let listenFD = try UnixSocket.listen(path: configuration.socketPath, mode: mode_t(configuration.socketMode))
        let http = try configuration.metricsListen.map { try MetricsHTTPServer(address: $0, metrics: metrics, logger: logger) }
        http?.start()
        metricsPort.withLock { $0 = http?.port }
        let context = ServiceContext(configuration: configuration, postgres: postgres, cache: cache, reader: reader, maintenance: maintenance,
                                     keys: CacheKeys(namespace: configuration.namespace), stats: stats, metrics: metrics,
                                     logger: logger, startedNanos: monotonicNanos())
        let dispatcher = Dispatcher(families: [
            HealthRPC(context: context), PositionRPC(context: context), TradeEventRPC(context: context),
            AccountRPC(context: context), DecisionRPC(context: context), AnalyticsRPC(context: context),
            TraderStateRPC(context: context), MarketDataRPC(context: context), OperationsRPC(context: context),
            ConversationRPC(context: context),
        ])
        let loop = try EventLoop(listenFD: listenFD, mailbox: mailbox, dispatcher: dispatcher, context: context)
        cache.start()
        reader.start()
        limiter.start()
        postgres.start()
        maintenance.start()
        // The loop object stays on its thread; only its Sendable inputs were built here.
        let box = LoopBox(loop)
        loopThread.start { [self] in
            box.take().run()
            http?.stop()
            reader.shutdown()
            postgres.shutdown()
            limiter.stop()
            limiter.flushDue(now: .max)
            cache.shutdown()
            maintenance.shutdown()
            state.withLock { $0 = .stopped }
            logger.info("server stopped")
        }
        logger.info("listening", metadata: [
            "socket": "\(configuration.socketPath)", "instance": "\(configuration.instanceID)",
            "postgres": "\(redactConnectionString(configuration.postgresURL))", "redis": "\(configuration.redis)",
        ])
    }

    /// Begins a graceful shutdown; returns at once.
    public func shutdown() {
        let post = state.withLock { s -> Bool in
            guard case .running = s else { return false }
            s = .stopping
            return true
        }
        if post { mailbox.post(.shutdown) }
    }

    /// Blocks the calling thread until the server has stopped. Don't call from the cooperative pool;
    /// use `stoppedAsync()` there.
    public func waitUntilStopped() {
        loopThread.join()
    }

    /// Suspends (without blocking a pool thread) until the server has stopped.
    public func stoppedAsync() async {
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            let t = Thread { [self] in
                waitUntilStopped()
                k.resume()
            }
            t.start()
        }
    }
}

/// Hands the non-Sendable loop to the thread that runs it.
/// Safety of `@unchecked Sendable`: `take()` is called exactly once, by the loop thread, after which
/// only that thread touches the loop; the creating thread keeps no other reference.
private final class LoopBox: @unchecked Sendable {
    private var loop: EventLoop?
    init(_ loop: EventLoop) { self.loop = loop }
    func take() -> EventLoop {
        defer { loop = nil }
        return loop!
    }
}

extension EngineStoreServer {
    /// `start()` from async code: the blocking part (migrations, binding) runs on a thread of its
    /// own, so Swift's cooperative pool is never blocked by libpq.
    public func startAsync() async throws {
        try await withCheckedThrowingContinuation { (k: CheckedContinuation<Void, any Error>) in
            WorkerThread.detach(name: "engine-store-start") { [self] in
                do {
                    try start()
                    k.resume()
                } catch {
                    k.resume(throwing: error)
                }
            }
        }
    }
}
