import EngineStoreClient
import Foundation
import LibPQ
import TestHarness
import Testing

/// What the deadline test saw; checked on the test's task.
private struct DeadlineObservations: Sendable {
    var blockerWaiting = false
    var tiny: Frame?
    var tinyElapsed: Duration = .zero
    var short: Frame?
    var shortElapsed: Duration = .zero
    var blocker: Frame?
    var after: Frame?
    var retry: Frame?
    var rows: [String: Int64] = [:]
}

/// The request deadline (proto-spec §3.6, §3.8 #13): a request whose deadline passes while it is still
/// queued is answered `deadline_exceeded` at its deadline and never runs.
@Suite struct DeadlineTests {
    /// The server's only Postgres worker is held in a SavePosition that waits for a table lock the test
    /// holds (ACCESS EXCLUSIVE on positions, from its own connection, in an open transaction), so later
    /// requests stay queued:
    /// (a) `deadline_ms = 1`: answered `deadline_exceeded` while the lock is still held, nothing written;
    /// (b) `deadline_ms = 300`: answered `deadline_exceeded` after 300 ms; the lock is released only
    ///     after that, the worker then reaches the request and must not run it: no row, and a retry with
    ///     the same idempotency key runs afresh (not a replay).
    @Test func aRequestStillQueuedAtItsDeadlineIsAnsweredAndNeverRun() async throws {
        let s = try await RunningServer.start {
            $0.postgresConnections = 1
            $0.hydrateOnStart = false
        }
        let path = s.socketPath
        let conninfo = s.postgresURL
        let seen: DeadlineObservations = try await offPool {
            var seen = DeadlineObservations()
            let raw = try RawConnection(path: path)
            try raw.hello()
            let locker = try PGConnection(conninfo: conninfo)
            let monitor = try PGConnection(conninfo: conninfo)
            try locker.exec("BEGIN")
            try locker.exec("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
            var locked = true
            defer { if locked { _ = try? locker.exec("ROLLBACK") } }

            // The blocker takes the only worker and waits for the lock.
            raw.send(Frame.encode(header: FrameHeader(kind: .request, method: 16, requestID: 10, deadlineMs: 30_000),
                                  message: openRequest(model: "deadline", symbol: "BLOCK")))
            let end = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < end {
                let waiting = try monitor.exec("""
                    SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                    WHERE c.relname = 'positions' AND NOT l.granted
                    """).int(0, 0)
                if waiting == 1 { seen.blockerWaiting = true; break }
                usleep(10_000)
            }
            guard seen.blockerWaiting else { return seen }

            // (a) A tiny deadline, queued behind the blocker.
            var start = ContinuousClock.now
            seen.tiny = try raw.request(16, id: 11, openRequest(model: "deadline", symbol: "TINY"), deadlineMs: 1)
            seen.tinyElapsed = ContinuousClock.now - start

            // (b) A short deadline; the lock is released only once it has passed (we hold its answer).
            let late = openRequest(model: "deadline", symbol: "LATE")
            start = ContinuousClock.now
            seen.short = try raw.request(16, id: 12, late, deadlineMs: 300)
            seen.shortElapsed = ContinuousClock.now - start
            try locker.exec("ROLLBACK")
            locked = false

            // The blocker completes; then a request queued after the expired ones proves the worker has
            // passed them (one worker, first in first out).
            seen.blocker = try raw.readFrame()
            seen.after = try raw.request(16, id: 13, openRequest(model: "deadline", symbol: "AFTER"))
            for symbol in ["BLOCK", "TINY", "LATE", "AFTER"] {
                seen.rows[symbol] = try monitor.execParams(
                    "SELECT count(*) FROM positions WHERE model_id = 'deadline' AND symbol = $1", [symbol]).int(0, 0)
            }
            // The expired request left no idempotency record: the same key runs now, as a first attempt.
            seen.retry = try raw.request(16, id: 14, late)
            seen.rows["LATE after retry"] = try monitor.execParams(
                "SELECT count(*) FROM positions WHERE model_id = 'deadline' AND symbol = $1", ["LATE"]).int(0, 0)
            return seen
        }

        try #require(seen.blockerWaiting, "the blocking SavePosition never waited for the lock")
        // (a)
        #expect(seen.tiny?.header.requestID == 11)
        #expect(errorPayload(seen.tiny)?.errorCode == .deadlineExceeded, "\(String(describing: errorPayload(seen.tiny)))")
        #expect(errorPayload(seen.tiny)?.retryable == true)
        #expect(seen.tinyElapsed < .seconds(1), "answered after \(seen.tinyElapsed), not at its deadline")
        // (b)
        #expect(seen.short?.header.requestID == 12)
        #expect(errorPayload(seen.short)?.errorCode == .deadlineExceeded, "\(String(describing: errorPayload(seen.short)))")
        #expect(seen.shortElapsed >= .milliseconds(300) && seen.shortElapsed < .seconds(2), "answered after \(seen.shortElapsed)")
        // The request that had started is applied; the two that were still queued are not.
        #expect(seen.blocker?.header.requestID == 10 && seen.blocker?.header.kind == .response)
        #expect(seen.after?.header.requestID == 13 && seen.after?.header.kind == .response)
        #expect(seen.rows["BLOCK"] == 1)
        #expect(seen.rows["AFTER"] == 1)
        #expect(seen.rows["TINY"] == 0, "a request whose deadline passed in the queue was run")
        #expect(seen.rows["LATE"] == 0, "a request whose deadline passed in the queue was run")
        // The retry with the same key executes for the first time.
        let retry = try #require(seen.retry)
        #expect(retry.header.kind == .response, "\(String(describing: errorPayload(retry)))")
        #expect(!retry.header.flags.contains(.replayed))
        #expect(try SavePositionResponse(payload: retry.payload).opened)
        #expect(seen.rows["LATE after retry"] == 1)
        await s.stop()
    }
}
