import EngineStoreWire
import LibPQ

/// The part of a write RPC that touches the database; `IdempotentWrite` wraps it with the key check.
protocol WriteBody: Sendable {
    func execute(_ session: PostgresSession) throws -> JobOutcome
    /// As `execute`, and sends `record(reply)` (the idempotency record) in the same round trip as its
    /// last statements when it can, saving one; returns whether it did.
    func execute(_ session: PostgresSession, record: ([UInt8]) -> PGCall) throws -> (JobOutcome, recorded: Bool)
    /// The rows it locks, ascending (see `LockOrder`).
    var lockKeys: [String] { get }
}

extension WriteBody {
    var lockKeys: [String] { [] }
    func execute(_ session: PostgresSession, record: ([UInt8]) -> PGCall) throws -> (JobOutcome, recorded: Bool) {
        (try execute(session), false)
    }
}

/// A write whose statements need no earlier result and also insert the idempotency record (with
/// the reply) — failing when the key exists — so a whole batch of them can be pipelined with its
/// COMMIT in one round trip. `outcome` throws `PipelineFallback` when the results need the
/// step-by-step path (a race, a missing field); such a statement wrote nothing, and the job runs again
/// the ordinary way (which also replays a recorded key).
protocol PipelinableWrite: WriteBody {
    func pipelined(key: String, digest: String) -> [PGCall]
    func outcome(_ results: [PGResult]) throws -> JobOutcome
    /// Whether this request can (a kind may pipeline only some of its requests).
    var canPipeline: Bool { get }
}

extension PipelinableWrite {
    var canPipeline: Bool { true }
}

struct PipelineFallback: Error {}

/// A write that can share one multi-row statement with others of its kind (see `BatchPlan`);
/// `batchRow` is nil when this request cannot (it then runs as a `PipelinableWrite` or step by step).
protocol BatchableWrite: WriteBody {
    func batchRow() -> (statement: SQLText, row: [String?])?
    /// The outcome from this request's result row; `recorded` is `batchReplies` when the statement
    /// recorded one of them (the outcome's reply must be that one).
    func outcome(batchRow: PGRow, recorded: BatchReplies?) -> JobOutcome
    /// The slot (first lock key) a result row of the shared statement belongs to, for a statement
    /// whose rows carry no `ord` column; nil: the rows carry `ord`.
    func slot(ofResultRow row: PGRow) -> String?
    /// For a statement that records the idempotency key itself: the reply when the request writes and
    /// when it finds its row there already (a duplicate), known before the statement runs. The row
    /// then ends in the key, method, digest and the replies (hex; the duplicate's when there is one),
    /// and the batch needs no records statement: it commits in its first round trip. Nil: the batch
    /// records the reply after.
    var batchReplies: BatchReplies? { get }
    /// Whether `batchRow` is non-nil for this request (cheap: builds no row).
    var canBatch: Bool { get }
}

/// The replies a self-recording shared statement chooses between (`BatchableWrite.batchReplies`);
/// `duplicate` nil for a statement without that case (snapshots: it builds the replies it cannot be
/// given, around the value only Postgres knows).
typealias BatchReplies = (written: [UInt8], duplicate: [UInt8]?)

extension BatchableWrite {
    func slot(ofResultRow row: PGRow) -> String? { nil }
    var batchReplies: BatchReplies? { nil }
    var canBatch: Bool { true }
}

/// A write that must read before it knows its statements (a close reads the row it locks), batched in
/// two round trips for all such jobs of a batch: every job's `reads`, then every job's `plan` calls with
/// the COMMIT. `plan` throws a `ServiceError` when the request fails; it has written nothing then.
/// `reads` must write nothing (they lock): in a batch they run even when the key turns out to be
/// recorded already (a retry, which must change nothing).
protocol TwoPhaseWrite: WriteBody {
    var reads: [PGCall] { get }
    func plan(_ reads: [PGResult]) throws -> WritePlan
}

/// The second phase of a `TwoPhaseWrite`: its statements, the outbox rows it owes, the reply (known
/// before they run, so its idempotency record goes with them) and how their results and the outbox
/// rows' ids (in the order of `intents`) become the outcome. The outbox rows are declared, not sent
/// as a call of the plan, so a two-phase batch records every job's with one statement.
struct WritePlan {
    let calls: [PGCall]
    let intents: [OutboxIntent]
    let reply: [UInt8]
    let finish: (_ results: [PGResult], _ outboxIDs: [Int64]) throws -> JobOutcome

    init(calls: [PGCall], intents: [OutboxIntent] = [], reply: [UInt8],
         finish: @escaping (_ results: [PGResult], _ outboxIDs: [Int64]) throws -> JobOutcome) {
        self.calls = calls
        self.intents = intents
        self.reply = reply
        self.finish = finish
    }

    /// The plan run on its own: its calls, its outbox rows, then `after` (the record, if any), in one round trip.
    func run(_ session: PostgresSession, then after: [PGCall] = []) throws -> JobOutcome {
        let outbox = intents.isEmpty ? [] : [Outbox.Insert(intents: intents).call]
        let results = try session.runAll(calls + outbox + after)
        return try finish(Array(results.prefix(calls.count)), outbox.isEmpty ? [] : Outbox.Insert.ids(results[calls.count]))
    }
}

extension TwoPhaseWrite {
    /// Step by step: the reads, then the plan's calls with the record in one more round trip.
    func execute(_ session: PostgresSession, record: ([UInt8]) -> PGCall) throws -> (JobOutcome, recorded: Bool) {
        let plan = try plan(try session.runAll(reads))
        return (try plan.run(session, then: [record(plan.reply)]), true)
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        try plan(try session.runAll(reads)).run(session)
    }
}

/// Exactly-once effect for retried writes. In the same transaction as the write:
///   1. claim the key (INSERT … ON CONFLICT DO NOTHING) — a concurrent request with the same key
///      waits on our uncommitted row and then finds it;
///   2. if the key was already there: same method and digest → replay the stored reply;
///      anything else → conflict;
///   3. otherwise run the write and store its reply under the key.
/// Only successful outcomes are stored: an error leaves nothing behind (the savepoint or transaction
/// rolls the claim back), so a retry re-runs the request and gets the same error or, after a
/// transient one, the success.
///
/// A class: a job travels as `any PostgresJob` through queues, filters and lock-order rounds, and a
/// struct this size was boxed and copied field by field (a retain per string) at every step.
final class IdempotentWrite<Body: WriteBody>: PostgresJob {
    let key: String
    let method: UInt16
    let digest: String
    let body: Body
    let reply: ReplyTarget

    var deadlineNanos: UInt64 { reply.deadlineNanos }
    var isTransactional: Bool { true }
    var target: ReplyTarget? { reply }
    /// The body's, computed once: the pool's routing, the lock-order rounds and the batch plan read them.
    let lockKeys: [String]
    /// How the body can run, found once (dynamic casts): every batch asks several times per job.
    let canPipeline: Bool
    let canTwoPhase: Bool

    init(key: String, method: UInt16, digest: String, body: Body, reply: ReplyTarget) {
        self.key = key
        self.method = method
        self.digest = digest
        self.body = body
        self.reply = reply
        self.lockKeys = body.lockKeys
        canPipeline = (body as? any PipelinableWrite)?.canPipeline == true || (body as? any BatchableWrite)?.canBatch == true
        // A body that batches some requests and reads first for others (snapshots): the batched ones
        // run as shared rows, not in two phases.
        canTwoPhase = !canPipeline && body is any TwoPhaseWrite
    }

    func execute(_ session: PostgresSession) throws -> JobOutcome {
        guard try session.first(Idempotency.Claim(key: key, method: method, digest: digest)) != nil else {
            guard let previous = try session.first(Idempotency.Lookup(key: key)), previous.method == Int64(method),
                  previous.digest == digest, let reply = previous.reply else {
                throw ServiceError(.conflict, "idempotency key \(key) was used for a different request", field: "idempotency_key")
            }
            return JobOutcome(reply: reply, replayed: true)
        }
        let (outcome, recorded) = try body.execute(session) { Idempotency.Record(key: key, reply: $0).call }
        if !recorded { try session.execute(Idempotency.Record(key: key, reply: outcome.reply)) }
        return outcome
    }

    func complete(_ result: Result<JobOutcome, ServiceError>) { reply.complete(result) }

    /// In a two-phase batch the body's reads and plan, with no claim: the batch looks the key up first
    /// (a recorded one is replayed), and records it with the plan's writes, where a key recorded
    /// meanwhile (a twin in flight) fails the batch, which then runs step by step and replays it. A
    /// failed plan is answered as such unless its key is recorded by the second round trip: a twin that
    /// held the rows this job waited for committed first, and its reply is the answer.
    var twoPhasePlan: TwoPhasePlan? {
        guard canTwoPhase, let body = body as? any TwoPhaseWrite else { return nil }
        return TwoPhasePlan(key: key, method: method, digest: digest, reads: body.reads) { results in
            do { return .write(try body.plan(results)) } catch { return .failed(error) }
        }
    }

    var batchPlan: BatchPlan? {
        guard let body = body as? any BatchableWrite, let (statement, ownRow) = body.batchRow() else { return nil }
        var row = ownRow
        let replies = body.batchReplies
        if let replies {
            row += [key, String(method), digest, hexString(replies.written)] + (replies.duplicate.map { [hexString($0)] } ?? [])
        }
        return BatchPlan(statement: statement, slot: lockKeys.first ?? key, row: row, key: key, method: method,
                         digest: digest, recordsKey: replies != nil,
                         slotOfRow: { body.slot(ofResultRow: $0) }) { body.outcome(batchRow: $0, recorded: replies) }
    }

    var pipelinePlan: PipelinePlan? {
        guard let body = body as? any PipelinableWrite, body.canPipeline else { return nil }
        return PipelinePlan(statements: body.pipelined(key: key, digest: digest)) { try body.outcome($0) }
    }
}

/// The statements on `engine_store_idempotency` (SQL/service.sql).
enum Idempotency {
    struct Claim: PGStatement {
        static let sql = SQLText.idemClaim
        let key: String, method: UInt16, digest: String
        var bindings: [String?] { [key, String(method), digest] }
    }

    struct Lookup: PGStatement {
        struct Row {
            var method: Int64?
            var digest: String?
            var reply: [UInt8]?
        }
        static let sql = SQLText.idemLookup
        let key: String
        var bindings: [String?] { [key] }
        static func decode(_ r: PGRow) -> Row {
            Row(method: r.int("method"), digest: r.string("digest"), reply: r.string("response").map(hexBytes))
        }
    }

    /// The keys of `keys` that are recorded.
    struct Seen: PGStatement {
        static let sql = SQLText.idemSeen
        let keys: [String]
        var bindings: [String?] { [pgArray(keys)] }
        static func decode(_ r: PGRow) -> String { r.string("key") ?? "" }
    }

    struct Record: PGStatement {
        static let sql = SQLText.idemRecord
        let key: String, reply: [UInt8]
        var bindings: [String?] { [key, hexString(reply)] }
    }

    /// The records of a batch's shared statements, replies included.
    struct RecordBatch: PGStatement {
        static let sql = SQLText.idemRecordBatch
        let records: [(key: String, method: UInt16, digest: String, reply: [UInt8])]
        var bindings: [String?] {
            [pgArray(records.map(\.key)), pgArray(records.map { String($0.method) }), pgArray(records.map(\.digest)),
             pgArray(records.map { hexString($0.reply) })]
        }
    }

    /// Deletes keys older than `hours`.
    struct Purge: PGStatement {
        static let sql = SQLText.idemPurge
        let hours: Int
        var bindings: [String?] { [String(hours)] }
    }
}

/// FNV-1a 64 over the request payload: tells a true retry (same bytes) from a reused key.
/// Not a security boundary; a collision would need a client to reuse its own key on purpose.
func requestDigest(_ payload: ArraySlice<UInt8>) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in payload {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    let s = String(h, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

func hexString(_ bytes: [UInt8]) -> String {
    String(unsafeUninitializedCapacity: bytes.count * 2) { out in
        var i = 0
        for b in bytes {
            out[i] = hexDigit(b >> 4)
            out[i + 1] = hexDigit(b)
            i += 2
        }
        return i
    }
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count / 2)
    var high: UInt8?
    for c in s.utf8 {
        let v: UInt8
        switch c {
        case 0x30...0x39: v = c - 0x30
        case 0x61...0x66: v = c - 0x61 + 10
        case 0x41...0x46: v = c - 0x41 + 10
        default: continue
        }
        if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
    }
    return out
}
