import Dispatch
import Synchronization
import Testing
@testable import EngineStoreServer

/// `postgres_connected_workers` must end at the true count however workers' connects interleave.
/// Before the count changed and was recorded under one lock, a worker could record its stale count
/// after another had recorded the newer one, and the gauge stayed one short (a CI failure of
/// PostgresFaultTests waiting for 3 of 3).
@Suite struct ConnectedWorkerCountTests {
    /// Forces the bad interleaving: the first worker is held inside its recording of 1 until the
    /// second worker's change has returned (or 300 ms pass: with the lock the second cannot return
    /// first, it waits for the first). The last value recorded must be 2.
    @Test func aLaterCountIsNeverOverwrittenByAnEarlierOne() async {
        let recorded = Mutex<[Int]>([])
        let firstIsRecording = DispatchSemaphore(value: 0)
        let secondReturned = DispatchSemaphore(value: 0)
        let count = ConnectedWorkerCount { n in
            if n == 1 {
                firstIsRecording.signal()
                _ = secondReturned.wait(timeout: .now() + .milliseconds(300))
            }
            recorded.withLock { $0.append(n) }
        }
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { count.change(by: 1) }
        DispatchQueue.global().async(group: group) {
            firstIsRecording.wait()
            count.change(by: 1)
            secondReturned.signal()
        }
        await withCheckedContinuation { done in group.notify(queue: .global()) { done.resume() } }
        #expect(count.value == 2)
        #expect(recorded.withLock { $0 } == [1, 2])
    }

    /// The same end state under free-running contention, read back through the Prometheus text.
    @Test func theGaugeEndsAtTheCountUnderConcurrentChanges() {
        let metrics = ServerMetrics()
        let count = ConnectedWorkerCount { metrics.postgresConnectedWorkers.record($0) }
        let threads = 8
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for _ in 0..<2_000 {
                count.change(by: 1)
                count.change(by: -1)
            }
            count.change(by: 1)
        }
        let line = metrics.text.split(separator: "\n").first { $0.hasPrefix("postgres_connected_workers ") }
        #expect(count.value == threads)
        #expect(line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } == Double(threads))
    }
}
