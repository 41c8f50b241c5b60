/// What one load run does.
public struct LoadConfiguration: Sendable {
    /// The service instances to drive: connection i goes to `socketPaths[i % count]` (several
    /// instances on one Postgres, for scale-out measurements).
    public var socketPaths: [String]
    public var socketPath: String { socketPaths[0] }
    public var connections = 1
    /// Concurrent requests per connection (closed loop: each slot sends its next request when the last returns).
    public var inFlight = 16
    public var mix = Mix.default
    /// Stop after this long (seconds)…
    public var duration: Double? = 10
    /// …or after this many requests.
    public var count: Int?
    /// Open loop: requests per second across all connections, latency measured from each request's
    /// intended start (coordinated-omission corrected). nil = closed loop.
    public var rate: Double?
    public var models = 4
    public var symbols = 8
    /// Seconds of load before measuring starts.
    public var warmup: Double = 0
    public var ticksPerBatch = 100
    /// Per-call deadline; retries happen inside it.
    public var timeoutSeconds: Double = 10
    /// Remember acknowledged writes and check them against Postgres at the end (needs `postgresURL`).
    public var verifyPostgresURL: String?
    /// Show a progress line (on a terminal).
    public var progress = false
    public var seed: UInt64?
    /// Fraction of writes sent twice at once, with one idempotency key, on two connections.
    public var duplicateRate: Double = 0

    public init(socketPath: String) { self.socketPaths = [socketPath] }

    public init(socketPaths: [String]) {
        precondition(!socketPaths.isEmpty, "at least one socket")
        self.socketPaths = socketPaths
    }
}
