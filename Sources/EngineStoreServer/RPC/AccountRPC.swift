import EngineStoreWire
import LibPQ

/// SaveSnapshot: equity snapshots plus marks of open positions, one transaction per call.
/// The throttle is decided in Postgres under a per-trader advisory lock, so it holds across
/// several service instances sharing the database.
struct AccountRPC: RPCFamily {
    let context: ServiceContext
    var methods: [Method] { [.saveSnapshot] }

    func handle(_ method: Method, payload: ArraySlice<UInt8>, reply: ReplyTarget) throws(ServiceError) {
        let skew = context.configuration.maxClockSkewMs
        var r = try SaveSnapshotRequest.decodeWrite(payload)
        guard !r.snapshots.isEmpty else { throw .invalid("snapshots", "at least one snapshot") }
        guard r.snapshots.count <= 1000 else { throw .invalid("snapshots", "at most 1000 per call") }
        var models = Set<String>()
        for i in r.snapshots.indices {
            let s = r.snapshots[i]
            try Validate.keyPart(s.modelID, "snapshots.model_id")
            guard models.insert(s.modelID).inserted else { throw .invalid("snapshots.model_id", "\(s.modelID) appears twice") }
            try Validate.timestampMs(s.timestampMs, "snapshots.timestamp_ms", maxSkewMs: skew)
            try Validate.finite(s.dollarEquity, "snapshots.dollar_equity")
            try Validate.finite(s.realizedPnl, "snapshots.realized_pnl")
            try Validate.finite(s.totalUnrealizedPnl, "snapshots.total_unrealized_pnl")
            try Validate.finite(s.cumPnlPct, "snapshots.cum_pnl_pct")
            try Validate.finite(s.sharpeRatio, "snapshots.sharpe_ratio")
            for marker in [s.sinceInceptionHourlyMarker, s.sinceInceptionMinuteMarker] {
                if let m = marker, m < Int64(Int32.min) || m > Int64(Int32.max) {
                    throw .invalid("snapshots.since_inception_marker", "out of INT range")
                }
            }
            try Validate.jsonObject(s.metadataJSON, "snapshots.metadata_json")
            for j in s.marks.indices {
                r.snapshots[i].marks[j].symbol = try Validate.symbol(s.marks[j].symbol, "snapshots.marks.symbol")
                try Validate.positive(s.marks[j].currentPrice, "snapshots.marks.current_price")
                try Validate.finite(s.marks[j].unrealizedPnl, "snapshots.marks.unrealized_pnl")
                try Validate.nonNegative(s.marks[j].liquidationPrice, "snapshots.marks.liquidation_price")
            }
        }
        context.submitWrite(r, method, payload: payload,
            body: SaveSnapshotBody(request: r, keys: context.keys, ttl: context.configuration.ttl,
                                   minIntervalMs: context.configuration.snapshotMinIntervalMs,
                                   hooks: context.configuration.testHooks),
            reply: reply)
    }
}

struct SaveSnapshotBody: TwoPhaseWrite, BatchableWrite {
    let request: SaveSnapshotRequest
    let keys: CacheKeys
    let ttl: CacheTTL
    let minIntervalMs: Int64
    let hooks: TestHooks
    /// Traders in `LockOrder`, each with its marks by symbol: the throttle lock, then the position
    /// rows. Sorted once here; the lock keys and the execution both follow it.
    let ordered: [AccountSnapshot]
    let lockKeys: [String]

    init(request: SaveSnapshotRequest, keys: CacheKeys, ttl: CacheTTL, minIntervalMs: Int64, hooks: TestHooks) {
        self.request = request
        self.keys = keys
        self.ttl = ttl
        self.minIntervalMs = minIntervalMs
        self.hooks = hooks
        ordered = request.snapshots.map { s in
            var s = s
            s.marks.sort { $0.symbol < $1.symbol }
            return s
        }.sorted { LockOrder.snapshot($0.modelID) < LockOrder.snapshot($1.modelID) }
        lockKeys = ordered.flatMap { s in [LockOrder.snapshot(s.modelID)] + s.marks.map { LockOrder.position(s.modelID, $0.symbol) } }
    }

    /// One snapshot without marks shares `snapshot_store_batch` with the others of its batch: its
    /// throttle lock, read, write and record in one round trip. Marks (rows to lock and read) and
    /// several traders per request take the two phases below.
    var canBatch: Bool {
        ordered.count == 1 && ordered[0].marks.isEmpty && !hooks.snapshotsInTwoPhases && hooks.snapshotLocked == nil
    }

    /// The snapshot's parameters, the throttle's interval, and the reply's bytes before and after
    /// what Postgres decides (`stored`, `last_stored_ms`): the result's model_id then field 2's tag
    /// (a bool's encoding less its value byte), and its marks_applied (0).
    func batchRow() -> (statement: SQLText, row: [String?])? {
        guard canBatch else { return nil }
        let s = ordered[0]
        var head = FieldWriter(), tail = FieldWriter()
        head.string(1, s.modelID)
        head.bool(2, true)
        tail.uint(4, 0)
        return (SQLText.snapshotStoreBatch, AccountStore.Upsert(snapshot: s).bindings
            + [String(minIntervalMs), hexString(head.writer.bytes.dropLast()), hexString(tail.writer.bytes)])
    }

    /// The statement records every key itself; this reply (stored, as its trader's newest) is the
    /// usual one and known before it runs, the others it builds.
    var batchReplies: BatchReplies? { (reply(stored: true, lastStoredMs: ordered[0].timestampMs), nil) }

    func outcome(batchRow row: PGRow, recorded: BatchReplies?) -> JobOutcome {
        let stored = row.bool("stored") ?? false, last = row.int("last_stored_ms") ?? 0
        if stored, last == ordered[0].timestampMs, let recorded { return JobOutcome(reply: recorded.written) }
        return JobOutcome(reply: reply(stored: stored, lastStoredMs: last))
    }

    private func reply(stored: Bool, lastStoredMs: Int64) -> [UInt8] {
        SaveSnapshotResponse(results: [SnapshotResult(modelID: ordered[0].modelID, stored: stored, lastStoredMs: lastStoredMs,
                                                      marksApplied: 0)]).encodedPayload()
    }

    /// For each trader in lock order: the throttle lock, the marked rows' locks (in order) and the time
    /// of the newest stored snapshot. They write nothing, so every snapshot that cannot share
    /// `snapshot_store_batch` joins two-phase batches.
    var reads: [PGCall] {
        ordered.flatMap { s in
            [AccountStore.LockModel(model: s.modelID).call] + s.marks.map { PositionStore.LockForMark(model: s.modelID, symbol: $0.symbol).call }
                + [AccountStore.Last(model: s.modelID).call]
        }
    }


    /// The marks of the rows found open are written (and go to the cache), then the snapshots the
    /// throttle lets through are stored.
    func plan(_ reads: [PGResult]) -> WritePlan {
        var results: [String: SnapshotResult] = [:]
        var intents: [OutboxIntent] = []
        var calls: [PGCall] = []
        var marked: [(model: String, call: Int)] = []  // each mark written: its trader, its call
        var index = 0
        for s in ordered {
            index += 1  // the lock
            hooks.snapshotLocked?(s.modelID)
            var applied: UInt32 = 0
            for mark in s.marks {
                defer { index += 1 }
                guard reads[index].rowCount > 0 else { continue }
                applied += 1
                intents.append(.position(model: s.modelID, symbol: mark.symbol))
                marked.append((s.modelID, calls.count))
                calls.append(PositionStore.Mark(model: s.modelID, mark: mark).call)
            }
            let last = reads[index].rowCount > 0 ? AccountStore.Last.decode(PGRow(reads[index], 0)) : nil
            index += 1
            let throttled: Bool
            if let last, minIntervalMs > 0, s.timestampMs != last {
                throttled = abs(s.timestampMs - last) < minIntervalMs
            } else {
                throttled = false
            }
            if !throttled { calls.append(AccountStore.Upsert(snapshot: s).call) }
            results[s.modelID] = SnapshotResult(modelID: s.modelID, stored: !throttled,
                                                lastStoredMs: throttled ? (last ?? 0) : max(last ?? s.timestampMs, s.timestampMs),
                                                marksApplied: applied)
        }
        // Results in request order, whatever order the locks were taken in.
        let reply = SaveSnapshotResponse(results: request.snapshots.compactMap { results[$0.modelID] }).encodedPayload()
        return WritePlan(calls: calls, intents: intents, reply: reply) { [keys, ttl] results, ids in
            // The rows were locked in phase one: each mark finds its row.
            let mutations = marked.compactMap { m in
                results[m.call].rowCount > 0
                    ? PositionStore.Mark.decode(PGRow(results[m.call], 0)).cacheMutation(keys, model: m.model, ttl: ttl.positions) : nil
            }
            return JobOutcome(reply: reply, cacheMutations: mutations, outboxIDs: ids)
        }
    }
}
