import EngineStoreWire
import Metrics
import struct Prometheus.PrometheusMetricsFactory
import class Prometheus.PrometheusCollectorRegistry
import Synchronization

/// The service's metrics, through swift-metrics front types backed by one Prometheus registry per
/// server (so several servers in one process, as in tests, keep separate numbers). The Stats RPC and
/// the optional HTTP endpoint print `text`.
///
/// Names: db_writes_total{table,outcome}, persistence_latency_seconds{rpc,stage} (stage = queue,
/// database, cache, total), cache_requests_total{family,result}, cache_hit_ratio{family},
/// inconsistencies_total, outbox_depth, open_connections, frames_in_total, frames_out_total,
/// errors_total{code}, group_commit_jobs_total, group_commit_transactions_total, outbox_relayed_total;
/// transport limits: in_flight_requests, output_buffered_bytes, output_buffered_peak_bytes,
/// output_capped_connections, connection_limit, connections_closed_total{reason},
/// connections_refused_total{reason}.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let counters = Mutex<[String: Metrics.Counter]>([:])
    private let gauges = Mutex<[String: Metrics.Gauge]>([:])
    private let hitsAndMisses = Mutex<[String: (hits: Int, misses: Int)]>([:])

    /// The per-request metrics of every method, made once: the hot path only indexes an array.
    struct MethodMetrics: Sendable {
        let total, queue, database: Metrics.Timer
        /// db_writes_total by outcome; nil for methods that write no table.
        let ok, replayed, failed, rejected: Metrics.Counter?
    }

    private let byMethod: [MethodMetrics?]
    private let cacheStage: Metrics.Timer

    /// Metrics of a method id, nil for an unknown one.
    func method(_ raw: UInt16) -> MethodMetrics? { Int(raw) < byMethod.count ? byMethod[Int(raw)] : nil }

    let framesIn: Metrics.Counter
    let framesOut: Metrics.Counter
    let openConnections: Metrics.Gauge
    let inconsistencies: Metrics.Counter
    let outboxDepth: Metrics.Gauge
    /// Postgres workers holding a live connection (all of them, normally).
    let postgresConnectedWorkers: Metrics.Gauge
    let outboxRelayed: Metrics.Counter
    let groupCommitJobs: Metrics.Counter
    let groupCommitTransactions: Metrics.Counter
    /// Requests handed to workers and not yet answered (sampled by the event loop every 100 ms).
    let inFlightRequests: Metrics.Gauge
    /// Reply bytes queued and not yet sent, over all connections (sampled every 100 ms).
    let outputBufferedBytes: Metrics.Gauge
    /// The most reply bytes one connection has held at once since start (what a slow reader cost).
    let outputBufferedPeakBytes: Metrics.Gauge
    /// Connections not being read because their unsent output is at `--max-output-bytes` (sampled).
    let outputCappedConnections: Metrics.Gauge
    /// Client connections accepted at most: `--max-connections` or the descriptor budget, if lower.
    let connectionLimit: Metrics.Gauge

    init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        factory = f
        var byMethod = [MethodMetrics?](repeating: nil, count: Int(RPC.all.map(\.method.rawValue).max()!) + 1)
        for rpc in RPC.all {
            let m = rpc.method
            func timer(_ stage: String) -> Metrics.Timer {
                Metrics.Timer(label: "persistence_latency_seconds", dimensions: [("rpc", rpc.name), ("stage", stage)], factory: f)
            }
            func writes(_ outcome: String) -> Metrics.Counter? {
                rpc.table.isEmpty ? nil : Metrics.Counter(label: "db_writes_total", dimensions: [("table", rpc.table), ("outcome", outcome)], factory: f)
            }
            byMethod[Int(m.rawValue)] = MethodMetrics(total: timer("total"), queue: timer("queue"), database: timer("database"),
                                                      ok: writes("ok"), replayed: writes("replayed"), failed: writes("error"),
                                                      rejected: writes("rejected"))
        }
        self.byMethod = byMethod
        cacheStage = Metrics.Timer(label: "persistence_latency_seconds", dimensions: [("rpc", "all"), ("stage", "cache")], factory: f)
        framesIn = Metrics.Counter(label: "frames_in_total", factory: f)
        framesOut = Metrics.Counter(label: "frames_out_total", factory: f)
        openConnections = Metrics.Gauge(label: "open_connections", factory: f)
        inconsistencies = Metrics.Counter(label: "inconsistencies_total", factory: f)
        outboxDepth = Metrics.Gauge(label: "outbox_depth", factory: f)
        postgresConnectedWorkers = Metrics.Gauge(label: "postgres_connected_workers", factory: f)
        outboxRelayed = Metrics.Counter(label: "outbox_relayed_total", factory: f)
        groupCommitJobs = Metrics.Counter(label: "group_commit_jobs_total", factory: f)
        groupCommitTransactions = Metrics.Counter(label: "group_commit_transactions_total", factory: f)
        inFlightRequests = Metrics.Gauge(label: "in_flight_requests", factory: f)
        outputBufferedBytes = Metrics.Gauge(label: "output_buffered_bytes", factory: f)
        outputBufferedPeakBytes = Metrics.Gauge(label: "output_buffered_peak_bytes", factory: f)
        outputCappedConnections = Metrics.Gauge(label: "output_capped_connections", factory: f)
        connectionLimit = Metrics.Gauge(label: "connection_limit", factory: f)
        for g in [inFlightRequests, outputBufferedBytes, outputBufferedPeakBytes, outputCappedConnections, connectionLimit] { g.record(0) }
        inconsistencies.increment(by: 0)
        outboxDepth.record(0)
    }

    var text: String { registry.emitToString() }

    private func counter(_ label: String, _ dims: [(String, String)]) -> Metrics.Counter {
        let key = label + dims.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { c in
            if let existing = c[key] { return existing }
            let new = Metrics.Counter(label: label, dimensions: dims, factory: factory)
            c[key] = new
            return new
        }
    }

    /// A direct-path batch Redis did not take (the outbox relay redoes it).
    /// Postgres broke a lock cycle (SQLSTATE 40P01): LockOrder should make this stay 0.
    func deadlockDetected() {
        counter("postgres_deadlocks_total", []).increment()
    }

    /// A connection the server closed, by `reason` (write_timeout, idle_timeout, handshake_timeout, frame_timeout).
    func connectionClosed(reason: String) {
        counter("connections_closed_total", [("reason", reason)]).increment()
    }

    /// Connections refused (`connection_limit`: at --max-connections or the descriptor budget) or not
    /// accepted (`fd_limit`: accept failed with EMFILE/ENFILE and accepting paused).
    func connectionsRefused(reason: String, count: Int) {
        counter("connections_refused_total", [("reason", reason)]).increment(by: Int64(count))
    }

    func cacheWriteFailed() {
        counter("cache_write_failures_total", []).increment()
    }

    func error(_ code: ErrorCode) {
        counter("errors_total", [("code", code.description)]).increment()
    }

    /// Time Redis took for one direct-path pipeline.
    func cacheLatency(nanos: UInt64) { cacheStage.recordNanoseconds(Int64(clamping: nanos)) }

    /// Cache reads by key family; also keeps cache_hit_ratio{family} current.
    func cacheRead(family: String, hit: Bool) {
        counter("cache_requests_total", [("family", family), ("result", hit ? "hit" : "miss")]).increment()
        let ratio = hitsAndMisses.withLock { h -> Double in
            var v = h[family] ?? (0, 0)
            if hit { v.hits += 1 } else { v.misses += 1 }
            h[family] = v
            return Double(v.hits) / Double(v.hits + v.misses)
        }
        let gauge = gauges.withLock { g in
            if let existing = g[family] { return existing }
            let new = Metrics.Gauge(label: "cache_hit_ratio", dimensions: [("family", family)], factory: factory)
            g[family] = new
            return new
        }
        gauge.record(ratio)
    }
}
