import Logging
import Synchronization

/// Numbers the server reads back itself (Health) or that tests check; everything else is a
/// Prometheus metric in `ServerMetrics`.
final class ServerStats: Sendable {
    let openConnections = Atomic<Int>(0)
    /// Jobs committed through the pipelined fast path, and batches that fell back to the step-by-step path.
    let pipelinedJobs = Atomic<Int>(0)
    let pipelineFallbacks = Atomic<Int>(0)
    /// Multi-row statements shared by several jobs of a pipelined batch, and the jobs they carried.
    let sharedCalls = Atomic<Int>(0)
    let sharedRows = Atomic<Int>(0)
    /// Reads of two-phase jobs answered by one multi-row read of their batch (`PostgresWorker.readsForms`).
    let mergedReads = Atomic<Int>(0)
    /// Transactions committed by the workers (group commit: fewer commits than jobs).
    let commits = Atomic<Int>(0)
    /// Turns of the cache maintenance thread; the first ends after the warm-up (when Postgres and
    /// Redis answered), so a test can start once it is over.
    let maintenancePasses = Atomic<Int>(0)
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
