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
    public var ok: Bool { missing == 0 && duplicates == 0 }

    enum CodingKeys: String, CodingKey {
        case acknowledged, found, missing, duplicates, unacknowledged
        case byKind = "by_kind"
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
