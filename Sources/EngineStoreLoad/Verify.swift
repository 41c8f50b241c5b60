import LibPQ

/// `--verify`: Postgres must hold every acknowledged write of this run exactly once.
public struct Verification: Sendable, Codable, Equatable {
    /// One kind of write (positions, trades, trade_events, ticks, snapshots).
    public struct Kind: Sendable, Codable, Equatable {
        public var acknowledged = 0
        public var missing = 0
        public var unacknowledged = 0
    }

    public var acknowledged: Int
    public var found: Int
    /// Acknowledged but not in Postgres: a lost write.
    public var missing: Int
    /// The same logical write stored more than once.
    public var duplicates: Int
    /// In Postgres but never acknowledged (the call failed after the commit): allowed, reported.
    public var unacknowledged: Int
    /// The figures above by kind of write.
    public var byKind: [String: Kind] = [:]
    /// One request executed twice, seen in its answers: an open of a new lifecycle answered as an
    /// update, a new trade id answered `duplicate`, a close of a surely open position answered
    /// `not_found`, or a refused request whose key holds a recorded success in Postgres.
    public var reexecuted = 0
    /// Writes sent twice at once with one key (`--duplicate-rate`) …
    public var duplicateSends = 0
    /// … and the pairs whose answers differed.
    public var replyMismatches = 0
    public var ok: Bool { missing == 0 && duplicates == 0 && reexecuted == 0 && replyMismatches == 0 }

    enum CodingKeys: String, CodingKey {
        case acknowledged, found, missing, duplicates, unacknowledged, reexecuted
        case byKind = "by_kind"
        case duplicateSends = "duplicate_sends"
        case replyMismatches = "reply_mismatches"
    }
}

enum Verifier {
    static func verify(postgresURL: String, run: String, acknowledged ack: Acknowledged) throws -> Verification {
        let pg = try PGConnection(conninfo: postgresURL, applicationName: "engine-store-load-verify")
        let pattern = "load-\(run)-%"
        var v = Verification(acknowledged: 0, found: 0, missing: 0, duplicates: 0, unacknowledged: 0)

        func tally(_ kind: String, acknowledged: Int, found: Int, missing: Int, unacknowledged: Int) {
            v.acknowledged += acknowledged
            v.found += found
            v.missing += missing
            v.unacknowledged += unacknowledged
            v.byKind[kind] = Verification.Kind(acknowledged: acknowledged, missing: missing, unacknowledged: unacknowledged)
        }
        func compare(_ kind: String, _ acked: Set<String>, _ sql: String, _ params: [String?]) throws {
            let r = try pg.execParams(sql, params)
            var stored = Set<String>()
            for i in 0..<r.rowCount { if let id = r.string(i, 0) { stored.insert(id) } }
            tally(kind, acknowledged: acked.count, found: acked.intersection(stored).count,
                  missing: acked.subtracting(stored).count, unacknowledged: stored.subtracting(acked).count)
        }
        try compare("positions", ack.openedPositionIDs, "SELECT id FROM positions WHERE model_id LIKE $1", [pattern])
        try compare("trades", ack.tradeRowIDs, "SELECT id FROM trades WHERE model_id LIKE $1", [pattern])
        try compare("trade_events", ack.tradeEventIDs, "SELECT trade_id FROM engine_store_trade_events WHERE trade_id LIKE $1", [pattern])
        // Snapshots the server answered `stored` for: one row per (model, timestamp) (the table's unique key).
        try compare("snapshots", ack.snapshots,
                    "SELECT model_id || '|' || ts_ms FROM account_equity_snapshots WHERE model_id LIKE $1", [pattern])

        // Effects per lifecycle (`model|SYMBOL|entry_time_ms`, unique per open the loader sends): one
        // positions row at most (an open run again after the close would insert a second one) …
        v.duplicates += Int(try pg.execParams("""
            SELECT COALESCE(sum(n - 1), 0) FROM (
                SELECT count(*) AS n FROM positions WHERE model_id LIKE $1 GROUP BY model_id, symbol, entry_time_ms
                HAVING count(*) > 1) d
            """, [pattern]).int(0, 0) ?? 0)
        // … and no trades row beyond its acknowledged closes, except one per close that ended
        // without a definite answer (that one may have committed).
        let trades = try pg.execParams(
            "SELECT model_id || '|' || symbol || '|' || entry_ts_ms, id FROM trades WHERE model_id LIKE $1", [pattern])
        var tradesByLifecycle: [String: Set<String>] = [:]
        for i in 0..<trades.rowCount {
            if let lifecycle = trades.string(i, 0), let id = trades.string(i, 1) { tradesByLifecycle[lifecycle, default: []].insert(id) }
        }
        for (lifecycle, ids) in tradesByLifecycle {
            let tally = ack.closes[lifecycle] ?? CloseTally()
            v.duplicates += max(0, ids.subtracting(tally.acknowledged).count - tally.indefinite)
        }
        // A refused request has no effect, so its key holds no recorded success.
        for start in stride(from: 0, to: ack.definiteErrorKeys.count, by: 1000) {
            let keys = ack.definiteErrorKeys[start..<min(start + 1000, ack.definiteErrorKeys.count)]
            let array = "{" + keys.map { "\"\($0)\"" }.joined(separator: ",") + "}"
            v.reexecuted += Int(try pg.execParams("SELECT count(*) FROM engine_store_idempotency WHERE key = ANY($1::text[])",
                                                   [array]).int(0, 0) ?? 0)
        }
        v.reexecuted += ack.reexecuted
        v.duplicateSends = ack.duplicateSends
        v.replyMismatches = ack.replyMismatches

        // Each logical close has its own exit time, each tick its own time: a repeat is a duplicate.
        v.duplicates += Int(try pg.execParams("""
            SELECT count(*) FROM (SELECT 1 FROM trades WHERE model_id LIKE $1 GROUP BY model_id, symbol, exit_ts_ms HAVING count(*) > 1) d
            """, [pattern]).int(0, 0) ?? 0)
        let tickPattern = "T\(run)-%"
        v.duplicates += Int(try pg.execParams("""
            SELECT count(*) FROM (SELECT 1 FROM price_ticks WHERE provider = 'load' AND symbol LIKE $1 GROUP BY symbol, ts_ms HAVING count(*) > 1) d
            """, [tickPattern]).int(0, 0) ?? 0)
        let ticks = Int(try pg.execParams("SELECT count(*) FROM price_ticks WHERE provider = 'load' AND symbol LIKE $1", [tickPattern]).int(0, 0) ?? 0)
        tally("ticks", acknowledged: ack.ticks, found: min(ticks, ack.ticks), missing: max(0, ack.ticks - ticks),
              unacknowledged: max(0, ticks - ack.ticks))
        return v
    }
}
