import LibPQ

/// `--verify`: Postgres must hold every acknowledged write of this run exactly once.
public struct Verification: Sendable, Codable, Equatable {
    public var acknowledged: Int
    public var found: Int
    /// Acknowledged but not in Postgres: a lost write.
    public var missing: Int
    /// The same logical write stored more than once.
    public var duplicates: Int
    /// In Postgres but never acknowledged (the call failed after the commit): allowed, reported.
    public var unacknowledged: Int
    public var ok: Bool { missing == 0 && duplicates == 0 }
}

enum Verifier {
    static func verify(postgresURL: String, run: String, acknowledged ack: Acknowledged) throws -> Verification {
        let pg = try PGConnection(conninfo: postgresURL, applicationName: "engine-store-load-verify")
        let pattern = "load-\(run)-%"
        var v = Verification(acknowledged: 0, found: 0, missing: 0, duplicates: 0, unacknowledged: 0)

        func compare(_ acked: Set<String>, _ sql: String, _ params: [String?]) throws {
            let r = try pg.execParams(sql, params)
            var stored = Set<String>()
            for i in 0..<r.rowCount { if let id = r.string(i, 0) { stored.insert(id) } }
            v.acknowledged += acked.count
            v.found += acked.intersection(stored).count
            v.missing += acked.subtracting(stored).count
            v.unacknowledged += stored.subtracting(acked).count
        }
        try compare(ack.openedPositionIDs, "SELECT id FROM positions WHERE model_id LIKE $1", [pattern])
        try compare(ack.tradeRowIDs, "SELECT id FROM trades WHERE model_id LIKE $1", [pattern])
        try compare(ack.tradeEventIDs, "SELECT trade_id FROM engine_store_trade_events WHERE trade_id LIKE $1", [pattern])

        // Each logical close has its own exit time, each tick its own time: a repeat is a duplicate.
        v.duplicates += Int(try pg.execParams("""
            SELECT count(*) FROM (SELECT 1 FROM trades WHERE model_id LIKE $1 GROUP BY model_id, symbol, exit_ts_ms HAVING count(*) > 1) d
            """, [pattern]).int(0, 0) ?? 0)
        let tickPattern = "T\(run)-%"
        v.duplicates += Int(try pg.execParams("""
            SELECT count(*) FROM (SELECT 1 FROM price_ticks WHERE provider = 'load' AND symbol LIKE $1 GROUP BY symbol, ts_ms HAVING count(*) > 1) d
            """, [tickPattern]).int(0, 0) ?? 0)
        let ticks = Int(try pg.execParams("SELECT count(*) FROM price_ticks WHERE provider = 'load' AND symbol LIKE $1", [tickPattern]).int(0, 0) ?? 0)
        v.acknowledged += ack.ticks
        v.found += min(ticks, ack.ticks)
        v.missing += max(0, ack.ticks - ticks)
        v.unacknowledged += max(0, ticks - ack.ticks)
        return v
    }
}
