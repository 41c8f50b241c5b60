import LibPQ

/// What a committed write owes Redis, recorded in `engine_store_outbox` in the same transaction.
/// An intent names what to rebuild; the relay reads the current values from Postgres when it runs.
enum OutboxIntent: Sendable, Equatable {
    case position(model: String, symbol: String)
    case recentTrades(model: String)
    /// A `position_closed` stream entry for a trades row.
    case closeEvent(tradeRowID: String)
    /// A `trade_event` stream entry plus the ingest guard.
    case tradeEvent(tradeID: String)
    case decision(model: String)
    /// analytics, since_inception, the leaderboard and its rendered cache.
    case analytics(model: String)
    /// The leaderboard sorted set and its rendered cache.
    case leaderboard
    case traderState(trader: String)
    /// The message list `conversations:<model>`.
    case conversations(model: String)

    var row: (kind: String, subject: String, ref: String) {
        switch self {
        case .position(let m, let s): ("position", m, s)
        case .recentTrades(let m): ("recent_trades", m, "")
        case .closeEvent(let id): ("close_event", id, "")
        case .tradeEvent(let id): ("trade_event", id, "")
        case .decision(let m): ("decision", m, "")
        case .analytics(let m): ("analytics", m, "")
        case .leaderboard: ("leaderboard", "", "")
        case .traderState(let t): ("trader_state", t, "")
        case .conversations(let m): ("conversations", m, "")
        }
    }

    init?(kind: String, subject: String, ref: String) {
        switch kind {
        case "position": self = .position(model: subject, symbol: ref)
        case "recent_trades": self = .recentTrades(model: subject)
        case "close_event": self = .closeEvent(tradeRowID: subject)
        case "trade_event": self = .tradeEvent(tradeID: subject)
        case "decision": self = .decision(model: subject)
        case "analytics": self = .analytics(model: subject)
        case "leaderboard": self = .leaderboard
        case "trader_state": self = .traderState(trader: subject)
        case "conversations": self = .conversations(model: subject)
        default: return nil
        }
    }
}

enum Outbox {
    static let insert = Statement(name: "outbox_insert", sql: """
        INSERT INTO engine_store_outbox (kind, subject, ref)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) RETURNING id
        """)

    /// Records intents inside the caller's transaction; returns their ids.
    static func record(_ session: PostgresSession, _ intents: [OutboxIntent]) throws -> [Int64] {
        guard !intents.isEmpty else { return [] }
        let rows = intents.map(\.row)
        let r = try session.run(insert, [pgArray(rows.map(\.kind)), pgArray(rows.map(\.subject)), pgArray(rows.map(\.ref))])
        // Ids come from the sequence in row order: sorted, they are in the order of `intents`.
        return (0..<r.rowCount).compactMap { r.int($0, 0) }.sorted()
    }

    /// Rows the direct path did not clear within `graceMs`, oldest first, locked for this relay only.
    static let claimDue = Statement(name: "outbox_claim_due", sql: """
        SELECT id, kind, subject, ref FROM engine_store_outbox
        WHERE created_at < now() - make_interval(secs => $1::float8 / 1000)
        ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
        """)

    /// Specific rows (the direct path could not apply them), if no other relay holds them.
    static let claimIDs = Statement(name: "outbox_claim_ids", sql: """
        SELECT id, kind, subject, ref FROM engine_store_outbox WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE SKIP LOCKED
        """)

    static let delete = Statement(name: "outbox_delete", sql: "DELETE FROM engine_store_outbox WHERE id = ANY($1::bigint[])")

    static let depth = Statement(name: "outbox_depth", sql: "SELECT count(*) FROM engine_store_outbox")
}
