import LibPQ

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
    let statements: [PGCall]
    let finish: @Sendable ([PGResult]) throws -> JobOutcome
}

/// How a job shares one multi-row statement with the other jobs of its kind in a pipelined batch:
/// the statement's parameters are arrays, `row` is this job's element of each. Its idempotency
/// record (with the reply `finish` builds) is written after the statement, in the same transaction.
struct BatchPlan: Sendable {
    let statement: SQLText
    /// The slot the row writes: a call holds each slot at most once (a repeat starts the next call).
    let slot: String
    let row: [String?]
    let key: String, method: UInt16, digest: String
    /// The statement records the key with the reply itself (`BatchableWrite.batchReplies`).
    var recordsKey = false
    /// The slot a result row belongs to, for a statement whose rows carry no `ord` column (their place
    /// in the call); nil for one whose rows do.
    var slotOfRow: @Sendable (PGRow) -> String? = { _ in nil }
    /// The outcome from this job's result row.
    let finish: @Sendable (PGRow) -> JobOutcome
}

/// How a job runs in a two-phase batch (see `TwoPhaseWrite`): `reads` go out with the other jobs'
/// reads, then `next` says what the job does with their results. The batch checks the key before the
/// reads and records it (`key`, `method`, `digest` and the plan's reply) with the writes: no claim.
struct TwoPhasePlan: Sendable {
    enum Next {
        /// The statements of phase two.
        case write(WritePlan)
        /// Wrote nothing; runs again step by step after the commit (the key was recorded: a replay).
        case again
        /// Fails with this error, unless its key turns out recorded by then (a twin committed).
        case failed(any Error)

        /// What phase two sends for the job (its record goes in the batch's one records statement).
        var calls: [PGCall] {
            if case .write(let write) = self { write.calls } else { [] }
        }
    }
    let key: String, method: UInt16, digest: String
    let reads: [PGCall]
    let next: @Sendable ([PGResult]) -> Next
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
    /// Non-nil when the job can share a multi-row statement there (preferred to `pipelinePlan`).
    var batchPlan: BatchPlan? { get }
    /// Whether `pipelinePlan` or `batchPlan` is non-nil for this kind of job (cheap: builds neither).
    var canPipeline: Bool { get }
    /// Non-nil when the job can run in a two-phase batch.
    var twoPhasePlan: TwoPhasePlan? { get }
    var canTwoPhase: Bool { get }
    /// The request behind the job, for latency metrics.
    var target: ReplyTarget? { get }
    /// The rows the job locks, as `LockOrder` keys in the order it takes them (ascending).
    var lockKeys: [String] { get }
}

extension PostgresJob {
    var pipelinePlan: PipelinePlan? { nil }
    var batchPlan: BatchPlan? { nil }
    var canPipeline: Bool { false }
    var twoPhasePlan: TwoPhasePlan? { nil }
    var canTwoPhase: Bool { false }
    var target: ReplyTarget? { nil }
    var lockKeys: [String] { [] }
}

/// A read-only statement outside any transaction.
struct ReadJob: PostgresJob {
    let deadlineNanos: UInt64
    let reply: ReplyTarget
    let body: @Sendable (PostgresSession) throws -> JobOutcome
    var isTransactional: Bool { false }
    var target: ReplyTarget? { reply }

    init(deadlineNanos: UInt64, reply: ReplyTarget, body: @escaping @Sendable (PostgresSession) throws -> JobOutcome) {
        self.deadlineNanos = deadlineNanos
        self.reply = reply
        self.body = body
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome { try body(session) }
    func complete(_ result: Result<JobOutcome, ServiceError>) { reply.complete(result) }
}
