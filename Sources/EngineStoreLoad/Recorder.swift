import EngineStoreClient
import Histogram

/// Latencies and outcomes of one worker; merged at the end, so workers never share a lock.
struct Recorder: Sendable {
    var histograms: [Operation: Histogram<UInt64>] = [:]
    var errors: [Operation: [String: Int]] = [:]
    var requests = 0

    mutating func record(_ op: Operation, micros: UInt64) {
        requests += 1
        if histograms[op] == nil { histograms[op] = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three) }
        _ = histograms[op]!.record(max(1, min(micros, 600_000_000)))
    }

    mutating func recordError(_ op: Operation, _ code: String, micros: UInt64) {
        requests += 1
        errors[op, default: [:]][code, default: 0] += 1
    }

    mutating func merge(_ other: Recorder) {
        requests += other.requests
        for (op, h) in other.histograms {
            if histograms[op] == nil { histograms[op] = h } else { histograms[op]!.add(h) }
        }
        for (op, codes) in other.errors {
            for (code, n) in codes { errors[op, default: [:]][code, default: 0] += n }
        }
    }
}

/// The writes the server acknowledged, for `--verify`.
struct Acknowledged: Sendable {
    var openedPositionIDs: Set<String> = []
    var tradeRowIDs: Set<String> = []
    var tradeEventIDs: Set<String> = []
    var ticks = 0
    var snapshotsStored = 0

    mutating func merge(_ o: Acknowledged) {
        openedPositionIDs.formUnion(o.openedPositionIDs)
        tradeRowIDs.formUnion(o.tradeRowIDs)
        tradeEventIDs.formUnion(o.tradeEventIDs)
        ticks += o.ticks
        snapshotsStored += o.snapshotsStored
    }
}
