import Logging
import Synchronization

/// Counters the server keeps about itself for tests and start-up logs (Prometheus metrics live in ServerMetrics).
final class ServerStats: Sendable {
    let openConnections = Atomic<Int>(0)
    let framesIn = Atomic<Int>(0)
    let framesOut = Atomic<Int>(0)
    let cacheHits = Atomic<Int>(0)
    let cacheMisses = Atomic<Int>(0)
    /// Jobs committed through the pipelined fast path, and batches that fell back to the step-by-step path.
    let pipelinedJobs = Atomic<Int>(0)
    let pipelineFallbacks = Atomic<Int>(0)
    /// Transactions committed by the workers and the jobs they carried (group commit: jobs / commits).
    let commits = Atomic<Int>(0)
    let committedJobs = Atomic<Int>(0)
    /// Outbox rows waiting (sampled every second) and rows applied by the relay.
    let outboxDepth = Atomic<Int>(0)
    let relayed = Atomic<Int>(0)
    /// Differences found by consistency checks.
    let inconsistencies = Atomic<Int>(0)
}

/// What RPC handlers share: the Postgres pool, the cache writer, key names and settings.
struct ServiceContext: Sendable {
    let configuration: ServerConfiguration
    let postgres: PostgresPool
    let cache: CacheWriter
    let reader: CacheReader
    let maintenance: CacheMaintenance
    let keys: CacheKeys
    let stats: ServerStats
    let metrics: ServerMetrics
    let logger: Logger
    let startedNanos: UInt64
}
