@testable import EngineStoreServer
import EngineStoreWire
import LibPQ
import Testing

/// How a pipelined batch is cut into calls: consecutive jobs of one shared statement share a call,
/// a repeated slot starts the next call, a job with its own statements keeps them.
@Suite struct PipelineUnitsTests {
    struct FakeJob: PostgresJob {
        var slot: String?
        var ownStatements = 0
        var slow = false
        var twoPhase = false
        var keys: [String] = []
        var lockKeys: [String] { keys.isEmpty ? slot.map { [$0] } ?? [] : keys }
        var canPipeline: Bool { !slow && !twoPhase }
        var canTwoPhase: Bool { twoPhase }
        var deadlineNanos: UInt64 { .max }
        var isTransactional: Bool { true }
        func execute(_ session: PostgresSession) throws -> JobOutcome { JobOutcome(reply: []) }
        func complete(_ result: Result<JobOutcome, ServiceError>) {}
        var batchPlan: BatchPlan? {
            slot.map { BatchPlan(statement: .positionOpenBatch, slot: $0, row: [], key: "k", method: 1, digest: "d") { _ in JobOutcome(reply: []) } }
        }
        var twoPhasePlan: TwoPhasePlan? { twoPhase ? TwoPhasePlan(key: "k", method: 1, digest: "d", reads: []) { _ in .again } : nil }
        var pipelinePlan: PipelinePlan? {
            guard canPipeline else { return nil }
            return PipelinePlan(statements: (0..<ownStatements).map { _ in PGCall(sql: .idemClaim, bindings: ["", "", ""]) }) { _ in JobOutcome(reply: []) }
        }
    }

    func shape(_ jobs: [FakeJob]) -> [String] {
        (PostgresWorker.pipelineUnits(jobs) ?? []).map {
            switch $0 {
            case .own(let j, _): "own \(j)"
            case .shared(_, let members, _): "shared \(members.map(String.init).joined(separator: ","))"
            case .reads(let j, _): "reads \(j)"
            }
        }
    }

    @Test func consecutiveSharedJobsShareOneCall() {
        #expect(shape(["a", "b", "c"].map { FakeJob(slot: $0) }) == ["shared 0,1,2"])
    }

    /// A call of one job runs the job's own statement instead.
    @Test func aRepeatedSlotStartsTheNextCall() {
        #expect(shape(["a", "a", "a", "b"].map { FakeJob(slot: $0) }) == ["own 0", "own 1", "shared 2,3"])
    }

    /// Pipelined jobs and two-phase ones (closes) share a transaction; jobs that run step by step
    /// commit apart, unless they share a lock key with the rest.
    @Test func jobsThatRunDifferentWaysCommitApartWhenTheirRowsDiffer() {
        let save = FakeJob(slot: "p|m|BTC"), other = FakeJob(slot: "p|m|ETH")
        let close = FakeJob(slot: nil, twoPhase: true, keys: ["p|m|SOL"])
        let snapshot = FakeJob(slot: nil, slow: true, keys: ["p|n|", "p|n|ETH"])
        let parts = PostgresWorker.independentParts([save, close, other, snapshot])
        #expect(parts?.map(\.count) == [3, 1])
        #expect(parts?.first?.map(\.lockKeys) == [["p|m|BTC"], ["p|m|SOL"], ["p|m|ETH"]], "job order kept")
        #expect(PostgresWorker.independentParts([save, close, other]) == nil, "one transaction")
        let snapshotSame = FakeJob(slot: nil, slow: true, keys: ["p|m|", "p|m|ETH"])
        #expect(PostgresWorker.independentParts([save, snapshotSame, other]) == nil)
        #expect(PostgresWorker.independentParts([close, snapshotSame, FakeJob(slot: nil, twoPhase: true, keys: ["p|m|ETH"])]) == nil)
        #expect(PostgresWorker.independentParts([save, other]) == nil)
        #expect(PostgresWorker.independentParts([close]) == nil)
    }

    /// A two-phase job on a key an earlier job takes waits for the next transaction, and so does every
    /// later job on its keys; the rest stay in the first.
    @Test func aTwoPhaseJobOnATakenKeyWaitsForTheNextTransaction() {
        func keys(_ parts: [[any PostgresJob]]?) -> [[String]]? { parts?.map { $0.map { $0.lockKeys.joined(separator: "+") } } }
        let close = { (symbol: String) in FakeJob(slot: nil, twoPhase: true, keys: ["p|m|" + symbol]) }
        let save = { (symbol: String) in FakeJob(slot: "p|m|" + symbol) }
        #expect(keys(PostgresWorker.repeatsApart([save("A"), close("B"), close("B"), save("C")])) == [["p|m|A", "p|m|B", "p|m|C"], ["p|m|B"]])
        #expect(keys(PostgresWorker.repeatsApart([save("A"), close("A"), save("A"), save("B")])) == [["p|m|A", "p|m|B"], ["p|m|A", "p|m|A"]])
        #expect(keys(PostgresWorker.repeatsApart([close("A"), save("A")])) == [["p|m|A"], ["p|m|A"]])
        #expect(PostgresWorker.repeatsApart([save("A"), save("A"), close("B")]) == nil, "saves of one slot take their turns in one transaction")
        #expect(PostgresWorker.repeatsApart([close("A"), close("B")]) == nil)
        #expect(PostgresWorker.repeatsApart([close("A"), close("A"), FakeJob(slot: nil, slow: true, keys: ["p|m|B"])]) == nil)
    }

    @Test func twoPhaseJobsMayShareOnlyKeysOfTheirOwn() {
        let close = FakeJob(slot: nil, twoPhase: true, keys: ["p|m|SOL"])
        #expect(PostgresWorker.repeatsApart([FakeJob(slot: "p|m|BTC"), close, FakeJob(slot: "p|m|BTC")]) == nil)
        #expect(PostgresWorker.repeatsApart([FakeJob(slot: "p|m|SOL"), close]) != nil)
        #expect(PostgresWorker.repeatsApart([close, close]) != nil)
    }

    /// A two-phase job's reads sit in the batch's first round trip in its place: the shared calls
    /// before and after it stay apart, so the rows are locked in the batch's order.
    @Test func aTwoPhaseJobsReadsKeepTheirPlace() {
        let close = FakeJob(slot: nil, twoPhase: true, keys: ["p|m|C"])
        #expect(shape([FakeJob(slot: "a"), FakeJob(slot: "b"), close, FakeJob(slot: "d"), FakeJob(slot: "e")])
                == ["shared 0,1", "reads 2", "shared 3,4"])
        #expect(shape([FakeJob(slot: "a"), close, FakeJob(slot: nil, slow: true)]) == [])
    }

    @Test func aJobWithItsOwnStatementsSplitsTheRun() {
        let jobs = [FakeJob(slot: "a"), FakeJob(slot: nil, ownStatements: 1), FakeJob(slot: "b"), FakeJob(slot: "a")]
        #expect(shape(jobs) == ["own 0", "own 1", "shared 2,3"])
    }
}

/// One instance writes a model's rows from one worker only (PostgresPool's queues).
@Suite struct LockPartitionTests {
    @Test func aModelsSlotsAndItsSnapshotLockShareAWorker() {
        for model in ["m0", "m1", "load-x-m7", "μ"] {
            let worker = LockOrder.partition(LockOrder.snapshot(model), of: 4)
            for symbol in ["BTC", "ETH", "U1", "U49"] {
                #expect(LockOrder.partition(LockOrder.position(model, symbol), of: 4) == worker)
            }
        }
    }

    @Test func modelsSpreadOverTheWorkers() {
        let used = Set((0..<40).map { LockOrder.partition(LockOrder.position("m\($0)", "BTC"), of: 4) })
        #expect(used == [0, 1, 2, 3])
    }

    /// Phase two's calls: the repeated statements with a multi-row form become one call in the first's
    /// place, its parameters the calls' values as arrays; the rest keep their order, each job finds
    /// its results.
    @Test func repeatedRowStatementsOfPhaseTwoShareOneCall() {
        func upsert(_ model: String) -> PGCall { PGCall(sql: .snapshotUpsert, bindings: [model, "1", "2", nil, nil, nil, nil, nil, nil, "{}"]) }
        let mark = PGCall(sql: .positionMark, bindings: ["m", "BTC", "1", nil, nil])
        let record = PGCall(sql: .idemSeen, bindings: ["{k}"])
        let (sent, resultOf) = PostgresWorker.rowsMerged([mark, upsert("a"), mark, upsert("b"), upsert("c"), record])
        #expect(sent.map(\.sql) == [.positionMark, .snapshotUpsertRows, .positionMark, .idemSeen])
        #expect(resultOf == [0, 1, 2, 1, 1, 3])
        #expect(sent[1].bindings[0] == pgArray(["a", "b", "c"]))
        #expect(sent[1].bindings[3] == pgArray([String?](repeating: nil, count: 3)))
        // A statement that occurs once keeps its own form.
        let (alone, same) = PostgresWorker.rowsMerged([mark, upsert("a"), record])
        #expect(alone.map(\.sql) == [.positionMark, .snapshotUpsert, .idemSeen] && same == [0, 1, 2])
    }

    /// Phase one's repeated last-snapshot reads go as one call after every other call of the round trip
    /// (after all the batch's locks); the locks stay where they were.
    @Test func repeatedReadsOfPhaseOneGoLastAsOneCall() {
        func lock(_ model: String) -> PGCall { PGCall(sql: .snapshotLockTrader64, bindings: [model]) }
        func last(_ model: String) -> PGCall { PGCall(sql: .snapshotLast, bindings: [model]) }
        let calls = [lock("a"), last("a"), lock("b"), last("b"), lock("c"), last("c")]
        let items: [PGPipelineItem] = [.sql("BEGIN")] + calls.map(\.item)
        let reads = calls.enumerated().map { (at: $0.offset + 1, call: $0.element) }
        let merged = PostgresWorker.readsMerged(items, reads: reads)
        #expect(merged.statements == [.snapshotLastRows] && merged.mergedCount == 3)
        #expect(merged.items.map(Self.name) == ["BEGIN", "snapshot_lock_trader_64", "snapshot_lock_trader_64",
                                                 "snapshot_lock_trader_64", "snapshot_last_rows"])
        if case .prepared(_, let params) = merged.items[4] { #expect(params == [pgArray(["a", "b", "c"])]) }
        // One read of a kind keeps its own form and place.
        let one = PostgresWorker.readsMerged(Array(items[0...2]), reads: Array(reads[0...1]))
        #expect(one.statements.isEmpty && one.items.map(Self.name) == ["BEGIN", "snapshot_lock_trader_64", "snapshot_last"])
    }

    private static func name(_ item: PGPipelineItem) -> String {
        switch item {
        case .prepared(let name, _): name
        case .sql(let text): text
        }
    }
}
