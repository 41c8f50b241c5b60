// Decode speed of the generated wire messages (built by bench/wire-decode, release, one thread).
// Payloads: a SavePositionRequest with all 23 fields, and a SaveSnapshotRequest with 20 snapshots of
// 5 marks each. `walk` only iterates the tags (what a §5.4 strictness pre-pass over a library's
// decoder would at least cost). `--dump DIR` writes the payloads for other decoders to read.
import EngineStoreWire
import Foundation

func savePosition() -> SavePositionRequest {
    SavePositionRequest(idempotencyKey: "3f1c2a9e-7d64-4c1b-9a55-0b6f7d2e8c11", modelID: "deepseek-chat-v3.1", symbol: "BTC",
                        exchangeProvider: "hyperliquid", side: .long, quantity: 0.25, entryPrice: 67_250.5,
                        entryTimeMs: 1_767_225_600_123, leverage: 10, confidence: 0.72, riskUSD: 450, margin: 1681.26,
                        entryOID: 41_234_567_890, tpOID: 41_234_567_891, slOID: 41_234_567_892, waitForFill: false,
                        exitPlanJSON: #"{"profit_target":71000,"stop_loss":65500,"invalidation":"4h close below 65000"}"#,
                        indexJSON: #"{"rsi":58.2}"#, currentPrice: 67_310, unrealizedPnl: 14.87, liquidationPrice: 60_800,
                        commission: 0.84, slippage: 0.0002)
}

func saveSnapshot() -> SaveSnapshotRequest {
    let snapshots = (0..<20).map { i in
        AccountSnapshot(modelID: "model-\(i)", timestampMs: 1_767_225_600_000 + Int64(i), dollarEquity: 10_000 + Double(i),
                        realizedPnl: 120.5, totalUnrealizedPnl: -33.25, cumPnlPct: 1.2, sharpeRatio: 0.8,
                        sinceInceptionHourlyMarker: 400, sinceInceptionMinuteMarker: 24_000, metadataJSON: #"{"v":1}"#,
                        marks: ["BTC", "ETH", "SOL", "BNB", "XRP"].map {
                            PositionMark(symbol: $0, currentPrice: 100.5, unrealizedPnl: 3.5, liquidationPrice: 80)
                        })
    }
    return SaveSnapshotRequest(idempotencyKey: "9b2d7c4e-1a3f-4e8b-b6d5-2c9f0e7a1d33", snapshots: snapshots)
}

/// Tag walks: iterate every field, descending into nested messages (field 2, then 11), decode nothing.
struct WalkLeaf: WireMessage {
    var fields = 0
    init(from r: inout FieldReader) throws(WireError) { while try r.next() != nil { fields += 1 } }
    func encode(into w: inout FieldWriter) {}
}
struct WalkSnapshot: WireMessage {
    var fields = 0
    init(from r: inout FieldReader) throws(WireError) {
        while let f = try r.next() { fields += f.number == 11 ? try f.message("marks", as: WalkLeaf.self).fields : 1 }
    }
    func encode(into w: inout FieldWriter) {}
}
struct WalkBatch: WireMessage {
    var fields = 0
    init(from r: inout FieldReader) throws(WireError) {
        while let f = try r.next() { fields += f.number == 2 ? try f.message("snapshots", as: WalkSnapshot.self).fields : 1 }
    }
    func encode(into w: inout FieldWriter) {}
}

/// CPU time of this thread: on a shared machine, time spent descheduled does not count.
func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func measure(_ label: String, bytes: Int, iterations: Int, _ body: () throws -> Int) rethrows {
    var sink = 0
    for _ in 0..<max(1, iterations / 10) { sink &+= try body() }  // warm-up
    // Best of 7 rounds of thread CPU time: the machine is shared; the minimum is the least disturbed figure.
    var perOp = Double.infinity
    for _ in 0..<7 {
        let start = threadCPUNanos()
        for _ in 0..<iterations / 7 { sink &+= try body() }
        let ns = Double(threadCPUNanos() - start)
        perOp = min(perOp, ns / Double(iterations / 7))
    }
    print(String(format: "%-28@ %6d B  %10.0f ns/op  %7.1f MB/s  (sink %d)", label as NSString, bytes, perOp,
                 Double(bytes) / perOp * 1e3, sink & 1))
}

@main struct WireDecode {
    static func main() throws {
        let args = CommandLine.arguments.dropFirst()
        let position = savePosition().encodedPayload()
        let snapshot = saveSnapshot().encodedPayload()
        if let i = args.firstIndex(of: "--dump") {
            let dir = args[args.index(after: i)]
            try Data(position).write(to: URL(fileURLWithPath: dir + "/save_position.bin"))
            try Data(snapshot).write(to: URL(fileURLWithPath: dir + "/save_snapshot.bin"))
            return
        }
        let n = args.first.flatMap { Int($0) } ?? 200_000
        try measure("SavePositionRequest decode", bytes: position.count, iterations: n) {
            try SavePositionRequest(payload: position).symbol.utf8.count
        }
        try measure("SaveSnapshotRequest decode", bytes: snapshot.count, iterations: n / 20) {
            try SaveSnapshotRequest(payload: snapshot).snapshots.count
        }
        try measure("SavePositionRequest walk", bytes: position.count, iterations: n) { try WalkLeaf(payload: position).fields }
        try measure("SaveSnapshotRequest walk", bytes: snapshot.count, iterations: n / 20) { try WalkBatch(payload: snapshot).fields }
        let p = savePosition(), s = saveSnapshot()
        measure("SavePositionRequest encode", bytes: position.count, iterations: n) { p.encodedPayload().count }
        measure("SaveSnapshotRequest encode", bytes: snapshot.count, iterations: n / 20) { s.encodedPayload().count }
    }
}
