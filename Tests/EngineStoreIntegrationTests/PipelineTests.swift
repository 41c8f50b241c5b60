@testable import EngineStoreServer
import EngineStoreClient
import Foundation
import Synchronization
import Testing

@Suite struct PipelineTests {
    @Test func savePositionsTakeThePipelinedPathAndRepliesMatchTheRecord() async throws {
        let s = try await RunningServer.start { $0.postgresConnections = 1 }
        let client = s.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask { _ = try await client.savePosition(openRequest(model: "pipe", symbol: "P\(i)", key: "pipe-\(i)")) }
            }
            try await group.waitForAll()
        }
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) == 40)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == 0)
        // Group commit happened: fewer commits than jobs.
        #expect(s.server.stats.commits.load(ordering: .relaxed) < 40)
        // The reply recorded by SQL replays byte for byte the reply encoded in Swift.
        let first = try await client.savePosition(openRequest(model: "pipe", symbol: "Q", key: "pipe-q"))
        let replay = try await client.savePosition(openRequest(model: "pipe", symbol: "Q", key: "pipe-q"))
        #expect(first == replay)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == 1)
        let pg = try s.postgres()
        let stored = try pg.execParams("SELECT encode(response, 'hex') FROM engine_store_idempotency WHERE key = 'pipe-q'", [])
        #expect(stored.string(0, 0) == hexOf(first.encodedPayload()))
        await client.close()
        await s.stop()
    }
}

extension PipelineTests {
    /// Requests queued behind a stalled worker run as one batch. Requests that can open share one
    /// multi-row upsert; a repeat of a slot goes to the next call (an upsert may touch a row once), so
    /// the three saves of A apply in the order they came; every request gets, and replays, its own reply.
    @Test func repeatsOfASlotInOneBatchEachTakeTheirTurn() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let stalled = try await held.hold()
        let calls = s.server.stats.sharedCalls.load(ordering: .relaxed)
        let rows = s.server.stats.sharedRows.load(ordering: .relaxed)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)

        let requests = [("A", 1.0), ("A", 2.0), ("A", 3.0), ("B", 1.0), ("C", 1.0)].enumerated().map { i, r in
            openRequest(model: "rep", symbol: r.0, key: "rep-\(i)", quantity: r.1)
        }
        let replies = try await held.queue(requests.map { request in { try await client.savePosition(request) } })
        try await held.release(stalled)
        var answers: [SavePositionResponse] = []
        for task in replies { answers.append(try await task.value) }

        // [A] [A] [A, B, C]: the lone ones run their own statement.
        #expect(s.server.stats.sharedCalls.load(ordering: .relaxed) - calls == 1)
        #expect(s.server.stats.sharedRows.load(ordering: .relaxed) - rows == 3)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == fallbacks)
        #expect(answers[0].opened && !answers[1].opened && !answers[2].opened)
        #expect(Set(answers[0...2].map(\.positionID)).count == 1)
        // Each request of the shared call gets its own row's reply (the rows are matched by slot).
        for (request, answer) in zip(requests, answers) {
            #expect(answer.positionID.hasPrefix("rep|\(request.symbol)|"), "\(request.symbol): \(answer.positionID)")
        }
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT quantity FROM positions WHERE model_id = 'rep' AND symbol = 'A'").double(0, 0) == 3)
        // Each reply recorded (built in Swift) replays byte for byte.
        for (request, answer) in zip(requests, answers) {
            #expect(try await client.savePosition(request) == answer)
        }
        #expect(try await s.cacheSettled())
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["rep"])).differences.isEmpty)
        await held.stop()
    }

    /// A retry of an acknowledged save, queued with a new save so both share one upsert: the upsert
    /// applies the retry again before its key is recorded, so the records' insert fails, the round rolls
    /// back and runs step by step. The retry gets its first reply and changes nothing; the new save
    /// is applied once.
    @Test func aRetryInASharedCallIsRolledBackAndReplayed() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        let first = openRequest(model: "retry", symbol: "A", key: "retry-a", quantity: 1)
        let original = try await client.savePosition(first)
        // Another save moves A on, so a second application of `first` would show (quantity 1 again).
        _ = try await client.savePosition(openRequest(model: "retry", symbol: "A", key: "retry-a2", quantity: 2))

        let stalled = try await held.hold()
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let calls = s.server.stats.sharedCalls.load(ordering: .relaxed)
        let queued = try await held.queue([
            { @Sendable in try await client.savePosition(first) },
            { @Sendable in try await client.savePosition(openRequest(model: "retry", symbol: "B", key: "retry-b", quantity: 5)) },
        ])
        try await held.release(stalled)
        #expect(try await queued[0].value == original)
        #expect(try await queued[1].value.opened)
        #expect(s.server.stats.sharedCalls.load(ordering: .relaxed) - calls == 1)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) > fallbacks)
        let rows = try pg.exec("SELECT symbol, quantity FROM positions WHERE model_id = 'retry' AND status = 'open' ORDER BY symbol")
        #expect(rows.rowCount == 2)
        #expect(rows.double(0, 1) == 2)  // the retry was not applied a second time
        #expect(rows.double(1, 1) == 5)
        #expect(try pg.exec("SELECT count(*) FROM engine_store_idempotency WHERE key LIKE 'retry-%'").int(0, 0) == 3)
        #expect(try await s.cacheSettled())
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["retry"])).differences.isEmpty)
        await held.stop()
    }

    /// Trade events queued together share one insert; a repeated trade id goes to the next call and
    /// is acknowledged as a duplicate that publishes nothing.
    @Test func tradeEventsOfABatchShareOneInsertAndARepeatIsADuplicate() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let stalled = try await held.hold()
        let rows = s.server.stats.sharedRows.load(ordering: .relaxed)
        let events = [("T1", "k1"), ("T1", "k2"), ("T2", "k3"), ("T3", "k4")].map { id, key in
            PublishTradeEventRequest(idempotencyKey: key, tradeID: id, modelID: "ev", symbol: "BTC", kind: "fill", side: .long,
                                     price: 100, size: 1, fee: 0.01, timestampMs: 1_764_201_600_000, payloadJSON: #"{"n":"\#(key)"}"#)
        }
        let replies = try await held.queue(events.map { event in { try await client.publishTradeEvent(event) } })
        try await held.release(stalled)
        var answers: [PublishTradeEventResponse] = []
        for task in replies { answers.append(try await task.value) }
        #expect(answers.map(\.duplicate) == [false, true, false, false])
        // [T1], then [T1, T2, T3] (an event has no statement of its own: a lone one shares a call too)
        #expect(s.server.stats.sharedRows.load(ordering: .relaxed) - rows == 4)
        let redis = try s.redis()
        #expect(try await eventually { try redis.command(["XLEN", s.namespace + "trades:stream"]).integer == 3 })
        // The duplicate's key replays its own reply.
        #expect(try await client.publishTradeEvent(events[1]) == answers[1])
        // The shared statement recorded every key with its reply, the new events' and the duplicate's.
        #expect(try await client.publishTradeEvent(events[2]) == answers[2])
        #expect(try s.postgres().exec("SELECT count(*) FROM engine_store_idempotency WHERE key IN ('k1', 'k2', 'k3', 'k4')").int(0, 0) == 4)
        #expect(try await s.cacheSettled())
        #expect(try redis.command(["XLEN", s.namespace + "trades:stream"]).integer == 3)
        await held.stop()
    }

    /// The shared trade-event statement records each key itself: a retry of a recorded key fails it,
    /// the batch is rolled back and runs step by step, the retry gets its first reply back and the
    /// other event of the batch is published once.
    @Test func aRetriedTradeEventInASharedCallIsReplayed() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        @Sendable func event(_ id: String, _ key: String, size: Double = 1) -> PublishTradeEventRequest {
            PublishTradeEventRequest(idempotencyKey: key, tradeID: id, modelID: "evr", symbol: "BTC", kind: "fill", side: .long,
                                     price: 100, size: size, fee: 0.01, timestampMs: 1_764_201_600_000, payloadJSON: nil)
        }
        let original = try await client.publishTradeEvent(event("R1", "r1"))
        #expect(!original.duplicate)
        let stalled = try await held.hold()
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let calls = s.server.stats.sharedCalls.load(ordering: .relaxed)
        let queued = try await held.queue([
            { @Sendable in try await client.publishTradeEvent(event("R2", "r2")) },
            { @Sendable in try await client.publishTradeEvent(event("R1", "r1")) },
            { @Sendable in try await client.publishTradeEvent(event("R1", "r1-other", size: 2)) },
        ])
        try await held.release(stalled)
        #expect(try await queued[0].value == PublishTradeEventResponse(duplicate: false, eventID: "R2"))
        #expect(try await queued[1].value == original)  // replayed: not a duplicate, as its first answer said
        #expect(try await queued[2].value.duplicate)
        // The shared call failed (its results were never read) and the batch ran step by step.
        #expect(s.server.stats.sharedCalls.load(ordering: .relaxed) == calls)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) > fallbacks)
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT count(*) FROM engine_store_trade_events WHERE model_id = 'evr'").int(0, 0) == 2)
        #expect(try pg.exec("SELECT count(*) FROM engine_store_idempotency WHERE key LIKE 'r%'").int(0, 0) == 3)
        #expect(try await s.cacheSettled())
        let redis = try s.redis()
        #expect(try redis.command(["XLEN", s.namespace + "trades:stream"]).integer == 2)
        await held.stop()
    }

    /// Both statements (the shared upsert, a lone request's own) keep SavePosition's rule: a field not sent keeps its value, wait_for_fill
    /// included (the one column the insert defaults).
    @Test(arguments: [false, true]) func anOmittedWaitForFillKeepsItsValue(shared: Bool) async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        func stored() throws -> String? {
            try pg.exec("SELECT wait_for_fill::text FROM positions WHERE model_id = 'wff' AND status = 'open' AND symbol = 'BTC'").string(0, 0)
        }
        /// Saves alone, or (shared) queued with a second save behind a stalled worker, so both share one call.
        func save(_ request: SavePositionRequest) async throws {
            guard shared else { _ = try await client.savePosition(request); return }
            let rows = s.server.stats.sharedRows.load(ordering: .relaxed)
            let stalled = try await held.hold()
            let queued = try await held.queue([
                { @Sendable in try await client.savePosition(request) },
                { @Sendable in try await client.savePosition(openRequest(model: "wff", symbol: "ZZZ")) },
            ])
            try await held.release(stalled)
            for task in queued { _ = try await task.value }
            #expect(s.server.stats.sharedRows.load(ordering: .relaxed) - rows == 2)
        }
        var request = openRequest(model: "wff", symbol: "BTC")
        request.waitForFill = true
        try await save(request)
        #expect(try stored() == "true")
        try await save(openRequest(model: "wff", symbol: "BTC", quantity: 2))
        #expect(try stored() == "true")
        request = openRequest(model: "wff", symbol: "BTC")
        request.waitForFill = false
        try await save(request)
        #expect(try stored() == "false")
        await held.stop()
    }
}

/// A server whose one Postgres worker a test can hold after a commit: requests queued meanwhile run as
/// one batch, in the order they were queued.
struct HeldWorker {
    let gate = Gate()
    let s: RunningServer
    let client: EngineStoreClient

    init(configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
        let gate = self.gate
        s = try await RunningServer.start {
            $0.postgresConnections = 1
            $0.testHooks.workerDidCommit = { gate.pass($0) }
            configure(&$0)
        }
        client = s.client()
    }

    /// Holds the worker once it has committed a save of stall/X; returns that save.
    func hold() async throws -> Task<SavePositionResponse, any Error> {
        gate.arm(s.namespace + "positions:stall")
        let client = self.client
        let stalled = Task { try await client.savePosition(openRequest(model: "stall", symbol: "X")) }
        #expect(await eventually { gate.isHolding })
        return stalled
    }

    /// Sends each request once the one before is queued, so the queue holds them in this order.
    func queue<R: Sendable>(_ sends: [@Sendable () async throws -> R]) async throws -> [Task<R, any Error>] {
        var tasks: [Task<R, any Error>] = []
        let base = s.server.postgresQueueDepth
        for send in sends {
            tasks.append(Task { try await send() })
            #expect(await eventually { s.server.postgresQueueDepth == base + tasks.count })
        }
        return tasks
    }

    /// Lets the held worker go; returns once the stall's save is answered.
    func release(_ stalled: Task<SavePositionResponse, any Error>) async throws {
        gate.release()
        _ = try await stalled.value
    }

    func stop() async {
        gate.release()
        await client.close()
        await s.stop()
    }
}

func hexOf(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// A shared call's parameters are array literals: every element, however awkward, reads back as sent.
@Suite struct ArrayLiteralTests {
    @Test func awkwardElementsRoundTripThroughPostgres() async throws {
        let s = try await RunningServer.start()
        let pg = try s.postgres()
        let items: [String?] = ["plain", "", "NULL", nil, #"quote " and \ backslash"#, "{braces},commas", "μ€😀", " spaced ",
                                #"{"exit":"tp \"1\"","ok":true}"#, "tab\tnewline\n"]
        let back = try pg.execParams("SELECT e, e IS NULL FROM unnest($1::text[]) WITH ORDINALITY AS t(e, n) ORDER BY n",
                                     [pgArray(items)])
        #expect(back.rowCount == items.count)
        for (i, item) in items.enumerated() {
            #expect(back.string(i, 1) == (item == nil ? "t" : "f"))
            if let item { #expect(back.string(i, 0) == item) }
        }
        #expect(try pg.execParams("SELECT cardinality($1::text[])", [pgArray([String?]())]).int(0, 0) == 0)
        await s.stop()
    }
}

extension PipelineTests {
    /// Closes queued behind a stalled worker run as one two-phase batch: a look-up of their keys and
    /// their row locks in one round trip, their writes, records and the COMMIT in another. In the batch:
    /// a partial and two full closes, the retry of a close already acknowledged (replayed step by step
    /// after the commit) and a close with nothing open (not_found; it records nothing, so the key stays
    /// free). Every
    /// reply replays byte for byte, and the cache agrees with Postgres.
    @Test func closesOfABatchRunInTwoPhases() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        for (symbol, quantity) in [("A", 4.0), ("B", 2.0), ("C", 1.0), ("D", 1.0)] {
            _ = try await client.savePosition(openRequest(model: "tp", symbol: symbol, quantity: quantity))
        }
        func close(_ symbol: String, size: Double? = nil) -> ClosePositionRequest {
            ClosePositionRequest(idempotencyKey: "tp-\(symbol)", modelID: "tp", symbol: symbol, exitPrice: 110, exitSize: size,
                                 exitTimeMs: 1_764_201_700_000, exitCommission: 0.25)
        }
        let closedD = try await client.closePosition(close("D"))

        let stalled = try await held.hold()
        let pipelined = s.server.stats.pipelinedJobs.load(ordering: .relaxed)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let requests = [close("A", size: 1), close("B"), close("C"), close("D"), close("E")]
        let tasks = try await held.queue(requests.map { request in { try await client.closePosition(request) } })
        try await held.release(stalled)
        var answers: [ClosePositionResponse] = []
        for task in tasks[0..<4] { answers.append(try await task.value) }
        let missing = await #expect(throws: EngineStoreError.self) { try await tasks[4].value }
        #expect(missing?.code == .notFound)

        // The stalled save (counted once the hook let it go) and the three closes that wrote.
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) - pipelined == 4)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == fallbacks)
        #expect(answers[0].closedSize == 1 && answers[0].remainingSize == 3 && !answers[0].fullyClosed)
        #expect(answers[1].fullyClosed && answers[2].fullyClosed)
        #expect(answers[3] == closedD)
        #expect(try pg.exec("SELECT quantity FROM positions WHERE model_id = 'tp' AND symbol = 'A' AND status = 'open'").double(0, 0) == 3)
        #expect(try pg.exec("SELECT count(*) FROM positions WHERE model_id = 'tp' AND status = 'open'").int(0, 0) == 1)
        #expect(try pg.exec("SELECT count(*) FROM trades WHERE model_id = 'tp'").int(0, 0) == 4)
        #expect(try pg.exec("SELECT count(*) FROM engine_store_idempotency WHERE key = 'tp-E'").int(0, 0) == 0)
        for (request, answer) in zip(requests, answers) {
            #expect(try await client.closePosition(request) == answer)
        }
        // The failed close left its key free: once E is open, the same request closes it.
        _ = try await client.savePosition(openRequest(model: "tp", symbol: "E", quantity: 2))
        #expect(try await client.closePosition(close("E")).closedSize == 2)
        #expect(try await s.cacheSettled())
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["tp"])).differences.isEmpty)
        await held.stop()
    }
}

extension PipelineTests {
    /// Snapshots queued behind a stalled worker run as one two-phase batch: each trader's throttle lock,
    /// marked rows' locks and last snapshot time in one round trip; the marks and the snapshots the
    /// throttle lets through in another. In the batch: one with a mark, one throttled by a stored
    /// snapshot a second earlier, one of two traders, and the retry of an acknowledged one (replayed).
    /// A replay of the marked one changes nothing (its first round only locks), so the cache still
    /// agrees with Postgres.
    @Test func snapshotsOfABatchRunInTwoPhases() async throws {
        let held = try await HeldWorker {
            $0.snapshotMinIntervalMs = 30_000
            $0.testHooks.snapshotsInTwoPhases = true
        }
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        let t: Int64 = 1_764_201_600_000
        func snapshot(_ key: String, _ entries: [(String, Int64, [PositionMark])]) -> SaveSnapshotRequest {
            SaveSnapshotRequest(idempotencyKey: key, snapshots: entries.map {
                AccountSnapshot(modelID: $0.0, timestampMs: $0.1, dollarEquity: 1000, marks: $0.2)
            })
        }
        _ = try await client.savePosition(openRequest(model: "snap-a", symbol: "BTC"))
        let earlier = snapshot("snap-0", [("snap-e", t, [])])
        let first = try await client.saveSnapshots(earlier)
        _ = try await client.saveSnapshots(snapshot("snap-00", [("snap-b", t, [])]))

        let stalled = try await held.hold()
        let pipelined = s.server.stats.pipelinedJobs.load(ordering: .relaxed)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let mergedReads = s.server.stats.mergedReads.load(ordering: .relaxed)
        let requests = [
            snapshot("snap-1", [("snap-a", t, [PositionMark(symbol: "BTC", currentPrice: 123.5)])]),
            snapshot("snap-2", [("snap-b", t + 1000, [])]),
            snapshot("snap-3", [("snap-d", t, []), ("snap-c", t, [])]),
            earlier,
        ]
        let tasks = try await held.queue(requests.map { request in { try await client.saveSnapshots(request) } })
        try await held.release(stalled)
        var answers: [SaveSnapshotResponse] = []
        for task in tasks { answers.append(try await task.value) }

        // The stalled save and the three new snapshots; the retry is replayed step by step.
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) - pipelined == 4)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == fallbacks)
        // The four traders' last-snapshot reads (the retry's among them) went as one statement after
        // the locks, and each trader got its own answer: a mix-up would throttle snap-a or store snap-b.
        #expect(s.server.stats.mergedReads.load(ordering: .relaxed) - mergedReads == 5)
        #expect(answers[0].results.map(\.marksApplied) == [1] && answers[0].results[0].stored)
        #expect(answers[1].results.map(\.stored) == [false] && answers[1].results[0].lastStoredMs == t)
        #expect(answers[2].results.map(\.modelID) == ["snap-d", "snap-c"] && answers[2].results.allSatisfy(\.stored))
        #expect(answers[3] == first)
        #expect(try pg.exec("SELECT current_price FROM positions WHERE model_id = 'snap-a' AND status = 'open'").double(0, 0) == 123.5)
        #expect(try pg.exec("SELECT count(*) FROM account_equity_snapshots WHERE model_id LIKE 'snap-%'").int(0, 0) == 5)
        for (request, answer) in zip(requests, answers) {
            #expect(try await client.saveSnapshots(request) == answer)
        }
        #expect(try await s.cacheSettled())
        let differences = try await client.checkConsistency(CheckConsistencyRequest(models: ["snap-a"])).differences
        #expect(differences.isEmpty, "\(differences)")
        await held.stop()
    }
}

extension PipelineTests {
    /// Saves and closes queued behind a stalled worker commit together: the saves' shared upsert and the
    /// closes' key look-up and row locks go in one round trip, in the batch's lock order; the closes'
    /// writes, every record and the COMMIT in a second. One commit for the batch, where the saves and
    /// the closes used to commit apart (one more round trip and WAL flush). A close with nothing open
    /// fails alone and leaves its key free; every reply replays, and the cache agrees with Postgres.
    @Test func savesAndClosesOfABatchShareOneTransaction() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        for (symbol, quantity) in [("C", 2.0), ("E", 4.0)] {
            _ = try await client.savePosition(openRequest(model: "mx", symbol: symbol, quantity: quantity))
        }
        func close(_ symbol: String, size: Double? = nil) -> ClosePositionRequest {
            ClosePositionRequest(idempotencyKey: "mx-close-\(symbol)", modelID: "mx", symbol: symbol, exitPrice: 120, exitSize: size,
                                 exitTimeMs: 1_764_201_700_000, exitCommission: 0.5)
        }

        let stalled = try await held.hold()
        let commits = s.server.stats.commits.load(ordering: .relaxed)
        let pipelined = s.server.stats.pipelinedJobs.load(ordering: .relaxed)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let saves = [openRequest(model: "mx", symbol: "A", key: "mx-A"), openRequest(model: "mx", symbol: "B", key: "mx-B"),
                     openRequest(model: "mx", symbol: "F", key: "mx-F")]
        let closes = [close("C"), close("D"), close("E", size: 1)]
        let saveTasks = try await held.queue(saves.map { request in { try await client.savePosition(request) } })
        let closeTasks = try await held.queue(closes.map { request in { try await client.closePosition(request) } })
        try await held.release(stalled)
        var saved: [SavePositionResponse] = []
        for task in saveTasks { saved.append(try await task.value) }
        let closedC = try await closeTasks[0].value
        let missing = await #expect(throws: EngineStoreError.self) { try await closeTasks[1].value }
        #expect(missing?.code == .notFound)
        let closedE = try await closeTasks[2].value

        // One commit for the batch (the stalled save's was counted before the hook held it); pipelined:
        // the stalled save (counted once the hook let it go), three saves and the two closes that wrote.
        #expect(s.server.stats.commits.load(ordering: .relaxed) - commits == 1)
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) - pipelined == 6)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == fallbacks)
        #expect(saved.map(\.opened) == [true, true, true])
        #expect(closedC.fullyClosed && closedC.closedSize == 2)
        #expect(closedE.closedSize == 1 && closedE.remainingSize == 3 && !closedE.fullyClosed)
        #expect(try pg.exec("SELECT string_agg(symbol, ',' ORDER BY symbol) FROM positions WHERE model_id = 'mx' AND status = 'open'").string(0, 0) == "A,B,E,F")
        #expect(try pg.exec("SELECT count(*) FROM trades WHERE model_id = 'mx'").int(0, 0) == 2)
        #expect(try pg.exec("SELECT count(*) FROM engine_store_idempotency WHERE key = 'mx-close-D'").int(0, 0) == 0)
        for (request, answer) in zip(saves, saved) { #expect(try await client.savePosition(request) == answer) }
        #expect(try await client.closePosition(close("C")) == closedC)
        #expect(try await client.closePosition(close("E", size: 1)) == closedE)
        #expect(try await s.cacheSettled())
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["mx"])).differences.isEmpty)
        await held.stop()
    }
}

extension PipelineTests {
    /// Two snapshots of one trader in a two-phase batch: the second reads what the first wrote, so it
    /// waits for a second two-phase transaction instead of sending the whole batch step by step. The
    /// throttle shows the order: the first is stored, the second (a second later) is throttled by it.
    @Test func aRepeatedTraderInABatchTakesTheNextTransaction() async throws {
        let held = try await HeldWorker {
            $0.snapshotMinIntervalMs = 30_000
            $0.testHooks.snapshotsInTwoPhases = true
        }
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let t: Int64 = 1_764_201_600_000
        func snapshot(_ key: String, _ model: String, _ ts: Int64) -> SaveSnapshotRequest {
            SaveSnapshotRequest(idempotencyKey: key, snapshots: [AccountSnapshot(modelID: model, timestampMs: ts, dollarEquity: 1000)])
        }
        let stalled = try await held.hold()
        let commits = s.server.stats.commits.load(ordering: .relaxed)
        let pipelined = s.server.stats.pipelinedJobs.load(ordering: .relaxed)
        let requests = [snapshot("rep-1", "rep-x", t), snapshot("rep-2", "rep-x", t + 1000), snapshot("rep-3", "rep-y", t)]
        let tasks = try await held.queue(requests.map { request in { try await client.saveSnapshots(request) } })
        try await held.release(stalled)
        var answers: [SaveSnapshotResponse] = []
        for task in tasks { answers.append(try await task.value) }

        #expect(s.server.stats.commits.load(ordering: .relaxed) - commits == 2)
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) - pipelined == 4, "none ran step by step")
        #expect(answers.map { $0.results[0].stored } == [true, false, true])
        #expect(answers[1].results[0].lastStoredMs == t)
        for (request, answer) in zip(requests, answers) {
            #expect(try await client.saveSnapshots(request) == answer)
        }
        await held.stop()
    }
}

extension PipelineTests {
    /// A save and a snapshot marking the same row in one batch: the snapshot's first round would lock the
    /// row before the save writes it, so the one later in lock order (the save: the snapshot's throttle
    /// key sorts first) waits for a second transaction. Both are pipelined, none step by step, and the
    /// row and the cache end with the save's price.
    @Test func aSaveAndAMarkOfOneRowInABatchCommitInTurn() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        _ = try await client.savePosition(openRequest(model: "mk", symbol: "A"))
        let stalled = try await held.hold()
        let commits = s.server.stats.commits.load(ordering: .relaxed)
        let pipelined = s.server.stats.pipelinedJobs.load(ordering: .relaxed)
        let save = SavePositionRequest(idempotencyKey: "mk-save", modelID: "mk", symbol: "A", currentPrice: 200)
        let snapshot = SaveSnapshotRequest(idempotencyKey: "mk-snap", snapshots: [
            AccountSnapshot(modelID: "mk", timestampMs: 1_764_201_600_000, dollarEquity: 1000,
                            marks: [PositionMark(symbol: "A", currentPrice: 123.5)]),
        ])
        let saved = try await held.queue([save].map { request in { try await client.savePosition(request) } })
        let marked = try await held.queue([snapshot].map { request in { try await client.saveSnapshots(request) } })
        try await held.release(stalled)
        let savedReply = try await saved[0].value
        let markedReply = try await marked[0].value

        #expect(s.server.stats.commits.load(ordering: .relaxed) - commits == 2)
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) - pipelined == 3, "none ran step by step")
        #expect(!savedReply.opened && markedReply.results[0].marksApplied == 1)
        #expect(try pg.exec("SELECT current_price FROM positions WHERE model_id = 'mk' AND symbol = 'A' AND status = 'open'").double(0, 0) == 200)
        #expect(try await client.savePosition(save) == savedReply)
        #expect(try await client.saveSnapshots(snapshot) == markedReply)
        #expect(try await s.cacheSettled())
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["mk"])).differences.isEmpty)
        await held.stop()
    }
}

extension PipelineTests {
    /// A two-phase batch claims no key: it looks its keys up before its reads and records them with its
    /// writes. Here a twin of a close (same key, same bytes: a client's retry) is in flight in another
    /// transaction, holding the row and its uncommitted record, when the close's batch runs. The batch
    /// waits on the row; once the twin commits, the close must answer the twin's reply and write nothing:
    /// - twin closed the row: the close's plan finds nothing open, and the second round's look-up finds
    ///   the key recorded (without it, the answer would be not_found for a close that happened);
    /// - twin closed part of it: the close's plan succeeds, its record fails on the twin's key, the batch
    ///   is rolled back and runs step by step, which replays the key.
    @Test(arguments: [true, false]) func aCloseWhoseTwinCommitsFirstAnswersTheTwinsReply(twinClosesAll: Bool) async throws {
        let s = try await RunningServer.start { $0.postgresConnections = 1 }
        let client = s.client()
        let pg = try s.postgres(), twin = try s.postgres()
        _ = try await client.savePosition(openRequest(model: "twin", symbol: "A", quantity: 4))
        let request = ClosePositionRequest(idempotencyKey: "twin-A", modelID: "twin", symbol: "A", exitPrice: 110,
                                           exitTimeMs: 1_764_201_700_000, exitCommission: 0.25)
        let reply = ClosePositionResponse(tradeRowID: "twin|A|trade", positionID: "twin-position", fullyClosed: twinClosesAll,
                                          closedSize: twinClosesAll ? 4 : 2, remainingSize: twinClosesAll ? 0 : 2,
                                          realizedGrossPnl: 1, realizedNetPnl: 0.5, totalCommission: 0.5)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        try twin.exec("BEGIN")
        _ = try twin.execParams("INSERT INTO engine_store_idempotency (key, method, digest, response) VALUES ($1, $2, $3, decode($4, 'hex'))",
                                [request.idempotencyKey, String(Method.closePosition.rawValue),
                                 requestDigest(request.encodedPayload()[...]), hexOf(reply.encodedPayload())])
        try twin.exec(twinClosesAll
            ? "UPDATE positions SET status = 'closed' WHERE model_id = 'twin' AND symbol = 'A' AND status = 'open'"
            : "UPDATE positions SET quantity = 2 WHERE model_id = 'twin' AND symbol = 'A' AND status = 'open'")
        let close = Task { try await client.closePosition(request) }
        // The close's batch waits on the twin's row lock.
        #expect(try await eventually {
            try pg.exec("""
                SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()
                """).int(0, 0) == 1
        })
        try twin.exec("COMMIT")
        #expect(try await close.value == reply)
        #expect(try pg.exec("SELECT count(*) FROM trades WHERE model_id = 'twin'").int(0, 0) == 0, "the close wrote no trade")
        let open = try pg.exec("SELECT quantity FROM positions WHERE model_id = 'twin' AND symbol = 'A' AND status = 'open'")
        #expect(twinClosesAll ? open.rowCount == 0 : open.double(0, 0) == 2)
        // Only the partial case's record meets the twin's: its batch is rolled back once.
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) - fallbacks == (twinClosesAll ? 0 : 1))
        await client.close()
        await s.stop()
    }
}

extension PipelineTests {
    /// Phase two of a batch writes its closes' trades rows and its traders' snapshots with one
    /// multi-row statement each (trade_insert_rows, snapshot_upsert_rows), and snapshots without marks
    /// share snapshot_store_batch. The same closes (two partial, two whole) and snapshots, sent once one
    /// at a time and once queued in one batch, must store equal rows (NULLs, JSON, booleans and doubles
    /// alike), answer equal replies and leave the cache agreeing; and so must the two snapshots sent as
    /// one request (`pair`: two traders, so always two phases).
    @Test(arguments: [false, true]) func aBatchStoresWhatItsRequestsStoreOneByOne(twoPhases: Bool) async throws {
        let held = try await HeldWorker { $0.testHooks.snapshotsInTwoPhases = twoPhases }
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        let t: Int64 = 1_764_201_600_000
        for model in ["alone", "batch"] {
            for (symbol, plan) in [("A", #"{"tp": 120.5, "note": "a \"quoted\" {plan}"}"#), ("B", nil), ("C", nil), ("D", nil)] {
                var open = openRequest(model: model, symbol: symbol, quantity: 3)
                open.exitPlanJSON = plan
                open.entryOID = symbol == "A" ? 7 : nil
                _ = try await client.savePosition(open)
            }
        }
        func closes(_ model: String) -> [ClosePositionRequest] {
            [ClosePositionRequest(idempotencyKey: "\(model)-cA", modelID: model, symbol: "A", exitPrice: 111.125, exitSize: 1,
                                  exitTimeMs: t + 5, exitOID: 9, exitTID: 10, exitCommission: 0.3, exitCrossed: true,
                                  exitLiquidationJSON: #"{"px": 1.5}"#, tradeID: "x-\(model)", tradeType: "stop"),
             ClosePositionRequest(idempotencyKey: "\(model)-cB", modelID: model, symbol: "B", exitPrice: 99, exitTimeMs: t + 6),
             ClosePositionRequest(idempotencyKey: "\(model)-cC", modelID: model, symbol: "C", exitPrice: 101.7, exitSize: 2.25,
                                  exitTimeMs: t + 7, exitCommission: 0.1),
             ClosePositionRequest(idempotencyKey: "\(model)-cD", modelID: model, symbol: "D", exitPrice: 98.3, exitTimeMs: t + 8,
                                  exitCommission: 0.2)]
        }
        func snapshots(_ model: String) -> [SaveSnapshotRequest] {
            [SaveSnapshotRequest(idempotencyKey: "\(model)-s1", snapshots: [
                AccountSnapshot(modelID: "\(model)-1", timestampMs: t, dollarEquity: 1000.5, realizedPnl: 3, totalUnrealizedPnl: -2.25,
                                cumPnlPct: 0.1, sharpeRatio: 1.5, sinceInceptionHourlyMarker: 4, sinceInceptionMinuteMarker: 240,
                                metadataJSON: #"{"src": "x"}"#)]),
             SaveSnapshotRequest(idempotencyKey: "\(model)-s2", snapshots: [AccountSnapshot(modelID: "\(model)-2", timestampMs: t, dollarEquity: 7)])]
        }
        var aloneReplies: [ClosePositionResponse] = []
        for request in closes("alone") { aloneReplies.append(try await client.closePosition(request)) }
        for request in snapshots("alone") { _ = try await client.saveSnapshots(request) }
        _ = try await client.saveSnapshots(SaveSnapshotRequest(idempotencyKey: "pair", snapshots: snapshots("pair").flatMap(\.snapshots)))

        let stalled = try await held.hold()
        let commits = s.server.stats.commits.load(ordering: .relaxed)
        let closing = try await held.queue(closes("batch").map { request in { try await client.closePosition(request) } })
        let saving = try await held.queue(snapshots("batch").map { request in { try await client.saveSnapshots(request) } })
        try await held.release(stalled)
        var batchReplies: [ClosePositionResponse] = []
        for task in closing { batchReplies.append(try await task.value) }
        for task in saving { _ = try await task.value }
        #expect(s.server.stats.commits.load(ordering: .relaxed) - commits == 1, "one batch")
        // The same replies but for the rows' ids.
        func unnamed(_ r: ClosePositionResponse) -> ClosePositionResponse {
            var r = r
            (r.tradeRowID, r.positionID) = ("", "")
            return r
        }
        #expect(batchReplies.map(unnamed) == aloneReplies.map(unnamed))

        func rows(_ sql: String) throws -> [[String?]] {
            let r = try pg.exec(sql)
            return (0..<r.rowCount).map { row in (0..<r.columnCount).map { r.isNull(row, $0) ? nil : r.string(row, $0) } }
        }
        let trades = """
            SELECT to_jsonb(t) - 'id' - 'model_id' - 'trade_id' - 'created_at' - 'updated_at' FROM trades t
            WHERE model_id = '%@' ORDER BY symbol
            """
        let alone = try rows(trades.replacingOccurrences(of: "%@", with: "alone"))
        #expect(alone.count == 4)
        #expect(try rows(trades.replacingOccurrences(of: "%@", with: "batch")) == alone)
        let positions = """
            SELECT to_jsonb(p) - 'id' - 'model_id' - 'cache_version' - 'created_at' - 'updated_at' FROM positions p
            WHERE model_id = '%@' ORDER BY symbol, status
            """
        let alonePositions = try rows(positions.replacingOccurrences(of: "%@", with: "alone"))
        #expect(alonePositions.count == 4)
        #expect(try rows(positions.replacingOccurrences(of: "%@", with: "batch")) == alonePositions)
        #expect(try await s.cacheSettled())
        #expect(try await client.checkConsistency(CheckConsistencyRequest(models: ["alone", "batch"])).differences.isEmpty)
        let equity = """
            SELECT to_jsonb(a) - 'id' - 'model_id' - 'created_at' FROM account_equity_snapshots a
            WHERE model_id LIKE '%@-_' ORDER BY model_id
            """
        let aloneEquity = try rows(equity.replacingOccurrences(of: "%@", with: "alone"))
        #expect(aloneEquity.count == 2)
        #expect(try rows(equity.replacingOccurrences(of: "%@", with: "batch")) == aloneEquity)
        #expect(try rows(equity.replacingOccurrences(of: "%@", with: "pair")) == aloneEquity)
        await held.stop()
    }
}

extension PipelineTests {
    /// A two-phase batch records every job's outbox rows with one statement and hands each job its own
    /// ids. Here the cache writer applies one close and declines the other (its model's positions hash
    /// was dropped), so only the declined close's rows go to the relay, which rebuilds that hash from
    /// Postgres. Had the ids been handed out wrong, the applied close would delete the declined one's
    /// rows and the hash would never come back, or a close's event row would be left behind and its
    /// event relayed a second time.
    @Test func eachCloseOfABatchKeepsItsOwnOutboxRows() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let redis = try s.redis()
        let t: Int64 = 1_764_201_600_000
        func close(_ model: String, _ n: Int64) -> ClosePositionRequest {
            ClosePositionRequest(idempotencyKey: "\(model)-\(n)", modelID: model, symbol: "A", exitPrice: 101, exitSize: 1, exitTimeMs: t + n)
        }
        // Both models' hashes and recent-trades lists are cached before the batch.
        for model in ["ob-applied", "ob-declined"] {
            _ = try await client.savePosition(openRequest(model: model, symbol: "A", quantity: 3))
            _ = try await client.closePosition(close(model, 1))
        }
        #expect(try await s.cacheSettled())
        for model in ["ob-applied", "ob-declined"] {
            #expect(try redis.command(["EXISTS", s.namespace + "trades:recent:" + model]).integer == 1)
        }
        _ = try redis.command(["DEL", s.namespace + "positions:ob-declined"])

        let stalled = try await held.hold()
        let commits = s.server.stats.commits.load(ordering: .relaxed)
        let requests = ["ob-declined", "ob-applied"].map { close($0, 2) }
        let closing = try await held.queue(requests.map { request in { try await client.closePosition(request) } })
        try await held.release(stalled)
        for task in closing { _ = try await task.value }
        #expect(s.server.stats.commits.load(ordering: .relaxed) - commits == 1, "one batch")

        // The relay rebuilds the declined model's hash: one position left, of size 1.
        #expect(try await eventually {
            (try redis.command(["HGET", s.namespace + "positions:ob-declined", "A"]).text ?? "").contains("\"quantity\":1")
        })
        #expect(try await s.cacheSettled())
        // Each close's event once: an event row left behind would be relayed, and the event sent again.
        let events = try streamEventIDs(redis, s.namespace + "trades:stream")
        #expect(events.count == 4 && Set(events).count == 4, "\(events)")
        let differences = try await client.checkConsistency(CheckConsistencyRequest(models: ["ob-applied", "ob-declined"])).differences
        #expect(differences.isEmpty, "\(differences)")
        await held.stop()
    }
}

extension PipelineTests {
    /// Snapshots without marks share snapshot_store_batch: the throttle locks, the reads of each
    /// trader's newest snapshot, the writes and the records in one round trip. In the batch: a new
    /// trader; one throttled by a snapshot stored a second earlier; one exactly the interval after its
    /// trader's newest; one at its trader's newest time (an update); one older than its trader's
    /// newest (stored, the reply naming the newer time); and a trader twice, whose second snapshot
    /// goes to a second call and must see the first one's row. The throttle is decided in SQL here
    /// and in Swift (`SaveSnapshotBody.plan`) on the two-phase path: the same batch through both
    /// paths must answer alike, and every record must be Swift's encoding byte for byte (the
    /// throttled and the older one's are built by the statement).
    @Test(arguments: [false, true]) func snapshotsWithoutMarksShareOneStatement(twoPhases: Bool) async throws {
        let held = try await HeldWorker {
            $0.snapshotMinIntervalMs = 30_000
            $0.testHooks.snapshotsInTwoPhases = twoPhases
        }
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        let t: Int64 = 1_764_201_600_000
        @Sendable func snapshot(_ key: String, _ model: String, _ ts: Int64) -> SaveSnapshotRequest {
            SaveSnapshotRequest(idempotencyKey: key, snapshots: [AccountSnapshot(modelID: model, timestampMs: ts, dollarEquity: 1000)])
        }
        for model in ["one-b", "one-d", "one-e", "one-f"] {
            _ = try await client.saveSnapshots(snapshot("one-0\(model)", model, t))
        }

        let stalled = try await held.hold()
        let calls = s.server.stats.sharedCalls.load(ordering: .relaxed)
        let rows = s.server.stats.sharedRows.load(ordering: .relaxed)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let requests = [
            snapshot("one-1", "one-a", t),
            snapshot("one-2", "one-b", t + 1000),
            snapshot("one-3", "one-c", t),
            snapshot("one-4", "one-c", t + 60_000),
            snapshot("one-5", "one-d", t - 60_000),
            snapshot("one-6", "one-e", t + 30_000),
            snapshot("one-7", "one-f", t),
        ]
        let tasks = try await held.queue(requests.map { request in { try await client.saveSnapshots(request) } })
        try await held.release(stalled)
        var answers: [SnapshotResult] = []
        for task in tasks { answers.append(try await task.value.results[0]) }

        if !twoPhases {
            #expect(s.server.stats.sharedCalls.load(ordering: .relaxed) - calls == 2)
            #expect(s.server.stats.sharedRows.load(ordering: .relaxed) - rows == 7)
        }
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == fallbacks)
        #expect(answers.map(\.stored) == [true, false, true, true, true, true, true])
        #expect(answers.map(\.lastStoredMs) == [t, t, t, t + 60_000, t, t + 30_000, t])
        #expect(answers.allSatisfy { $0.marksApplied == 0 })
        #expect(try pg.exec("SELECT count(*) FROM account_equity_snapshots WHERE model_id LIKE 'one-%'").int(0, 0) == 9)
        for (request, answer) in zip(requests, answers) {
            let recorded = try pg.exec("SELECT encode(response, 'hex') FROM engine_store_idempotency WHERE key = '\(request.idempotencyKey)'")
            #expect(recorded.string(0, 0) == hexOf(SaveSnapshotResponse(results: [answer]).encodedPayload()), "\(request.idempotencyKey)")
            #expect(try await client.saveSnapshots(request).results == [answer])
        }
        await held.stop()
    }

    /// The shared snapshot statement records each key itself: a retry of a recorded key fails it, the
    /// batch rolls back and runs step by step, the retry gets its first reply and the other snapshot
    /// of the batch is stored once.
    @Test func aRetriedSnapshotInASharedCallIsReplayed() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let t: Int64 = 1_764_201_600_000
        @Sendable func snapshot(_ key: String, _ model: String) -> SaveSnapshotRequest {
            SaveSnapshotRequest(idempotencyKey: key, snapshots: [AccountSnapshot(modelID: model, timestampMs: t, dollarEquity: 1000)])
        }
        let original = try await client.saveSnapshots(snapshot("sr-1", "sr-a"))
        let stalled = try await held.hold()
        let calls = s.server.stats.sharedCalls.load(ordering: .relaxed)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let queued = try await held.queue([
            { @Sendable in try await client.saveSnapshots(snapshot("sr-1", "sr-a")) },
            { @Sendable in try await client.saveSnapshots(snapshot("sr-2", "sr-b")) },
        ])
        try await held.release(stalled)
        #expect(try await queued[0].value == original)
        #expect(try await queued[1].value.results.map(\.stored) == [true])
        #expect(s.server.stats.sharedCalls.load(ordering: .relaxed) == calls)
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) > fallbacks)
        let pg = try s.postgres()
        #expect(try pg.exec("SELECT count(*) FROM account_equity_snapshots WHERE model_id LIKE 'sr-%'").int(0, 0) == 2)
        #expect(try pg.exec("SELECT count(*) FROM engine_store_idempotency WHERE key LIKE 'sr-%'").int(0, 0) == 2)
        await held.stop()
    }
}

extension PipelineTests {
    /// The saves of a shared position statement record one outbox row (kind `intents`, a `position`
    /// line per model) instead of one each, and the cache writer takes them as one write
    /// (`PostgresPool.cacheWrites`). Here Redis runs one model's script and refuses the other's (its
    /// hash key holds a string): the row must stay, for the relay, until both are applied. Had the
    /// taken save's write deleted the shared row on its own, the refused model's hash would never be
    /// rebuilt once the key is fixed.
    @Test func aSharedSaveCallKeepsItsOneOutboxRowUntilEveryModelIsApplied() async throws {
        let attempts = SharedCount()  // relay writes that carried so-b's hash
        let held = try await HeldWorker {
            $0.outboxGraceMs = 100
            $0.testHooks.relayWillApply = { keys in
                if keys.contains(where: { $0.hasSuffix("positions:so-b") }) { attempts.count.add(1, ordering: .relaxed) }
            }
        }
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let (redis, pg) = (try s.redis(), try s.postgres())
        for model in ["so-a", "so-b"] { _ = try await client.savePosition(openRequest(model: model, symbol: "A", quantity: 1)) }
        #expect(try await s.cacheSettled())
        _ = try redis.command(["DEL", s.namespace + "positions:so-b"])
        _ = try redis.command(["SET", s.namespace + "positions:so-b", "not a hash"])

        let stalled = try await held.hold()
        let calls = s.server.stats.sharedCalls.load(ordering: .relaxed)
        let requests = ["so-a", "so-b"].map { openRequest(model: $0, symbol: "A", quantity: 2) }
        let saving = try await held.queue(requests.map { request in { try await client.savePosition(request) } })
        try await held.release(stalled)
        for task in saving { _ = try await task.value }
        #expect(s.server.stats.sharedCalls.load(ordering: .relaxed) - calls == 1, "one shared call")

        // Redis ran so-a's script: the writer has been through the write.
        #expect(try await eventually {
            (try redis.command(["HGET", s.namespace + "positions:so-a", "A"]).text ?? "").contains("\"quantity\":2")
        })
        let rows = {
            let r = try pg.exec("SELECT kind || ':' || ref FROM engine_store_outbox WHERE ref LIKE '%so-%'")
            return (0..<r.rowCount).map { r.string($0, 0) ?? "" }
        }
        let recorded = try rows()
        #expect(recorded == ["intents:position\tso-a\t\nposition\tso-b\t"], "\(recorded)")
        // The relay takes the row up (100 ms grace) and fails on the string, twice: the row stays.
        #expect(await eventually { attempts.count.load(ordering: .relaxed) >= 2 })
        #expect(try rows() == ["intents:position\tso-a\t\nposition\tso-b\t"])

        // Fixed, the key is rebuilt by the relay from that row, which then goes.
        _ = try redis.command(["DEL", s.namespace + "positions:so-b"])
        #expect(try await s.cacheSettled())
        #expect((try redis.command(["HGET", s.namespace + "positions:so-b", "A"]).text ?? "").contains("\"quantity\":2"))
        let differences = try await client.checkConsistency(CheckConsistencyRequest(models: ["so-a", "so-b"])).differences
        #expect(differences.isEmpty, "\(differences)")
        await held.stop()
    }
}

extension PipelineTests {
    /// Ticks queued behind a stalled worker ride in the batch's pipeline with the saves: one commit, no
    /// fallback. Each ticks request's statement records the reply SQL builds, which replays byte for
    /// byte what Swift encodes; awkward raw JSON survives the array parameters; a batch of more ticks
    /// than `IngestTicksBody.pipelinedTicks` goes in by COPY on the step-by-step path, committed apart.
    @Test func ticksOfABatchRideInItsPipelineWithTheSaves() async throws {
        let held = try await HeldWorker()
        defer { held.gate.release() }
        let (s, client) = (held.s, held.client)
        let pg = try s.postgres()
        let base: Int64 = 1_764_201_600_000
        func ticks(_ symbols: [String], count: Int, from: Int64) -> [PriceTick] {
            (0..<count).map { i in
                PriceTick(provider: "hl", symbol: symbols[i % symbols.count], price: 100 + Double(i), timestampMs: from + Int64(i),
                          volume: i.isMultiple(of: 3) ? nil : 0.5, rawJSON: i == 1 ? #"{"a": "tab\t \"quoted\" back\\slash, {x}"}"# : nil)
            }
        }
        // SOL's latest price is newer than anything below: the first request advances BTC and ETH only.
        _ = try await client.ingestPriceTicks(IngestPriceTicksRequest(ticks: [PriceTick(provider: "hl", symbol: "SOL", price: 1, timestampMs: base + 10_000)]))
        let requests = [IngestPriceTicksRequest(idempotencyKey: "tk-1", ticks: ticks(["BTC", "ETH", "SOL"], count: 30, from: base)),
                        IngestPriceTicksRequest(idempotencyKey: "tk-2", ticks: ticks(["BTC"], count: 5, from: base + 100)),
                        IngestPriceTicksRequest(idempotencyKey: "tk-3", ticks: ticks(["DOGE"], count: IngestTicksBody.pipelinedTicks + 1, from: base))]

        let stalled = try await held.hold()
        let commits = s.server.stats.commits.load(ordering: .relaxed)
        let pipelined = s.server.stats.pipelinedJobs.load(ordering: .relaxed)
        let fallbacks = s.server.stats.pipelineFallbacks.load(ordering: .relaxed)
        let save = openRequest(model: "tk", symbol: "A", key: "tk-save")
        let tasks = try await held.queue(requests.map { request in { try await client.ingestPriceTicks(request) } })
        let saveTask = try await held.queue([save].map { request in { try await client.savePosition(request) } })[0]
        try await held.release(stalled)
        var replies: [IngestPriceTicksResponse] = []
        for task in tasks { replies.append(try await task.value) }
        let saved = try await saveTask.value

        // The two small requests and the save in one pipelined transaction, the COPY one in its own.
        #expect(s.server.stats.commits.load(ordering: .relaxed) - commits == 2)
        #expect(s.server.stats.pipelinedJobs.load(ordering: .relaxed) - pipelined == 4)  // with the stalled save
        #expect(s.server.stats.pipelineFallbacks.load(ordering: .relaxed) == fallbacks)
        #expect(replies.map(\.stored) == [30, 5, UInt32(IngestTicksBody.pipelinedTicks + 1)])
        #expect(replies.map(\.latestUpdated) == [2, 1, 1])
        #expect(saved.opened)
        let counts = try pg.exec("SELECT symbol, count(*), count(volume), count(raw) FROM price_ticks GROUP BY symbol ORDER BY symbol")
        #expect((0..<counts.rowCount).map { "\(counts.string($0, 0)!)=\(counts.int($0, 1)!)/\(counts.int($0, 2)!)/\(counts.int($0, 3)!)" }
                == ["BTC=15/3/1", "DOGE=501/334/1", "ETH=10/10/1", "SOL=11/10/0"])
        #expect(try pg.exec("SELECT raw->>'a' FROM price_ticks WHERE symbol = 'ETH' AND ts_ms = \(base + 1)").string(0, 0)
                == "tab\t \"quoted\" back\\slash, {x}")
        let latest = try pg.exec("SELECT symbol, ts_ms FROM price_latest ORDER BY symbol")
        #expect((0..<latest.rowCount).map { "\(latest.string($0, 0)!)@\(latest.int($0, 1)! - base)" }
                == ["BTC@104", "DOGE@500", "ETH@28", "SOL@10000"])
        for (request, reply) in zip(requests, replies) {
            let stored = try pg.execParams("SELECT encode(response, 'hex') FROM engine_store_idempotency WHERE key = $1", [request.idempotencyKey])
            #expect(stored.string(0, 0) == hexOf(reply.encodedPayload()))
            #expect(try await client.ingestPriceTicks(request) == reply)
        }
        #expect(try pg.exec("SELECT count(*) FROM price_ticks").int(0, 0) == 30 + 5 + 501 + 1)
        await held.stop()
    }
}
