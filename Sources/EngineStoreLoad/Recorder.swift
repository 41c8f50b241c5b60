import EngineStoreClient
import Histogram
import Synchronization

/// Latencies and outcomes of a run's workers, who all write to one (`SharedRecorder`).
struct Recorder: Sendable {
    /// One histogram per operation, by `Operation.ordinal` (an array, not a dictionary: no hashing
    /// per request).
    private var byOperation: [Histogram<UInt64>?] = Array(repeating: nil, count: Operation.allCases.count)
    var errors: [Operation: [String: Int]] = [:]
    var requests = 0
    /// Successful requests by the second (since the run started) they completed in.
    var timeline: [Int] = []

    /// The latencies of an operation's successes (nil: none succeeded).
    func histogram(_ op: Operation) -> Histogram<UInt64>? { byOperation[op.ordinal] }

    /// The operations that succeeded at least once, in `allCases` order.
    var succeeded: [Operation] { Operation.allCases.filter { byOperation[$0.ordinal] != nil } }

    mutating func record(_ op: Operation, micros: UInt64) {
        requests += 1
        let i = op.ordinal
        if byOperation[i] == nil {
            byOperation[i] = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        }
        _ = byOperation[i]!.record(max(1, min(micros, 600_000_000)))
    }

    mutating func recordError(_ op: Operation, _ code: String, micros: UInt64) {
        requests += 1
        errors[op, default: [:]][code, default: 0] += 1
    }

    /// Counts a success in the timeline (all of the run, warm-up included).
    mutating func recordCompletion(second: Int) {
        let i = max(0, second)
        if timeline.count <= i { timeline.append(contentsOf: repeatElement(0, count: i + 1 - timeline.count)) }
        timeline[i] += 1
    }
}

/// The recorder every worker of a run writes to.
final class SharedRecorder: Sendable {
    let recorder = Mutex(Recorder())
}

/// The closes of one position lifecycle (`model|SYMBOL|entry_time_ms`).
struct CloseTally: Sendable {
    /// Trades row ids of the acknowledged closes.
    var acknowledged: Set<String> = []
    /// Closes that ended without a definite answer (each may have committed one trades row).
    var indefinite = 0

    mutating func merge(_ o: CloseTally) {
        acknowledged.formUnion(o.acknowledged)
        indefinite += o.indefinite
    }
}

/// The writes the server acknowledged, for `--verify`.
struct Acknowledged: Sendable {
    /// False without `--verify`: the ids are not collected (only the counters).
    var keepsIDs = true
    var openedPositionIDs: Set<String> = []
    var tradeRowIDs: Set<String> = []
    var tradeEventIDs: Set<String> = []
    var ticks = 0
    /// Stored equity snapshots as `model|timestamp_ms` (unique: the run's clock only grows).
    var snapshots: Set<String> = []
    /// Closes by position lifecycle.
    var closes: [String: CloseTally] = [:]
    /// Answers that show a second execution of one request: an open of a fresh lifecycle answered
    /// `opened = false`, a new trade id answered `duplicate`, a close of a surely open position
    /// answered `not_found`.
    var reexecuted = 0
    /// Writes sent twice at once with one idempotency key (`--duplicate-rate`), and how many of
    /// those pairs were answered differently.
    var duplicateSends = 0
    var replyMismatches = 0
    /// Keys of writes refused with a definite error: none may have a recorded success.
    var definiteErrorKeys: [String] = []

    init(keepsIDs: Bool = true) { self.keepsIDs = keepsIDs }

    mutating func opened(_ positionID: String) {
        if keepsIDs { openedPositionIDs.insert(positionID) }
    }

    mutating func closed(_ lifecycle: String, tradeRowID: String) {
        guard keepsIDs else { return }
        tradeRowIDs.insert(tradeRowID)
        closes[lifecycle, default: CloseTally()].acknowledged.insert(tradeRowID)
    }

    mutating func stored(snapshotOf model: String, at timestampMs: Int64) {
        if keepsIDs { snapshots.insert("\(model)|\(timestampMs)") }
    }

    mutating func published(_ tradeEventID: String) {
        if keepsIDs { tradeEventIDs.insert(tradeEventID) }
    }

    mutating func merge(_ o: Acknowledged) {
        openedPositionIDs.formUnion(o.openedPositionIDs)
        tradeRowIDs.formUnion(o.tradeRowIDs)
        tradeEventIDs.formUnion(o.tradeEventIDs)
        ticks += o.ticks
        snapshots.formUnion(o.snapshots)
        for (lifecycle, tally) in o.closes { closes[lifecycle, default: CloseTally()].merge(tally) }
        reexecuted += o.reexecuted
        duplicateSends += o.duplicateSends
        replyMismatches += o.replyMismatches
        definiteErrorKeys += o.definiteErrorKeys
    }
}
