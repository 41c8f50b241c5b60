import LibPQ

/// What a committed write owes Redis, recorded in `engine_store_outbox` in the same transaction.
/// An intent names what to rebuild; the relay reads the current values from Postgres when it runs.
enum OutboxIntent: Sendable, Equatable {
    case position(model: String, symbol: String)
    /// Several key intents in one row (kind `intents`), for the requests of a batch that share a row
    /// instead of one each (issue 15): the saves of a shared position statement. Never a stream event.
    /// Stored in `ref` as lines of `kind<TAB>subject<TAB>ref`: no kind, subject or ref holds a tab or
    /// a newline (`Validate.keyPart`, `Validate.symbol`; kinds are fixed names).
    case intents([OutboxIntent])
    /// A `position_closed` stream entry for a trades row.
    case closeEvent(tradeRowID: String)
    /// A `trade_event` stream entry plus the ingest guard.
    case tradeEvent(tradeID: String)
    /// analytics, since_inception, the leaderboard and its rendered cache.
    case analytics(model: String)
    /// The leaderboard sorted set and its rendered cache.
    case leaderboard
    /// A kind in `CachedDocuments.all`, by its `kind` (the row's text as is).
    case document(kind: String, subject: String, ref: String)

    /// A stream entry: applied twice, it is there twice (every other intent rebuilds a key).
    var isStreamEvent: Bool {
        switch self {
        case .closeEvent, .tradeEvent: true
        default: false
        }
    }

    /// The intents a row stands for: the list of an `intents` row, else the intent itself.
    var parts: [OutboxIntent] {
        if case .intents(let list) = self { return list }
        return [self]
    }

    var row: (kind: String, subject: String, ref: String) {
        switch self {
        case .position(let m, let s): ("position", m, s)
        case .intents(let list):
            ("intents", "", list.map { let r = $0.row; return "\(r.kind)\t\(r.subject)\t\(r.ref)" }.joined(separator: "\n"))
        case .closeEvent(let id): ("close_event", id, "")
        case .tradeEvent(let id): ("trade_event", id, "")
        case .analytics(let m): ("analytics", m, "")
        case .leaderboard: ("leaderboard", "", "")
        case .document(let k, let s, let r): (k, s, r)
        }
    }

    init?(kind: String, subject: String, ref: String) {
        switch kind {
        case "position": self = .position(model: subject, symbol: ref)
        case "intents":
            // A line this version cannot read (an unknown kind, a stream event, a nested list) is left out.
            self = .intents(ref.split(separator: "\n").compactMap { line in
                let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                guard f.count == 3, f[0] != "intents", let intent = OutboxIntent(kind: f[0], subject: f[1], ref: f[2]),
                      !intent.isStreamEvent else { return nil }
                return intent
            })
        case "close_event": self = .closeEvent(tradeRowID: subject)
        case "trade_event": self = .tradeEvent(tradeID: subject)
        case "analytics": self = .analytics(model: subject)
        case "leaderboard": self = .leaderboard
        default:
            guard CachedDocuments.named(kind) != nil else { return nil }
            self = .document(kind: kind, subject: subject, ref: ref)
        }
    }
}

enum Outbox {
    struct Insert: PGStatement {
        static let sql = SQLText.outboxInsert
        let intents: [OutboxIntent]
        var bindings: [String?] {
            let rows = intents.map(\.row)
            return [pgArray(rows.map(\.kind)), pgArray(rows.map(\.subject)), pgArray(rows.map(\.ref))]
        }
        static func decode(_ r: PGRow) -> Int64 { r.int("id") ?? 0 }
        /// The ids of a result, in the order of `intents`: the sequence numbers rows in the order they
        /// are inserted.
        static func ids(_ r: PGResult) -> [Int64] { rows(r).sorted() }
    }

    /// Records intents inside the caller's transaction; returns their ids, in the order of `intents`.
    static func record(_ session: PostgresSession, _ intents: [OutboxIntent]) throws -> [Int64] {
        guard !intents.isEmpty else { return [] }
        return try session.rows(Insert(intents: intents)).sorted()
    }

    /// A claimed row: its id, and its intent (nil for a kind this version does not know).
    struct Claimed {
        var id: String
        var intent: OutboxIntent?
        init(_ r: PGRow) {
            id = r.string("id") ?? "0"
            intent = OutboxIntent(kind: r.string("kind") ?? "", subject: r.string("subject") ?? "", ref: r.string("ref") ?? "")
        }
    }

    /// Rows the direct path did not clear within `graceMs`, oldest first, locked for this relay only.
    struct ClaimDue: PGStatement {
        static let sql = SQLText.outboxClaimDue
        let graceMs: Int, limit: Int
        var bindings: [String?] { [String(graceMs), String(limit)] }
        static func decode(_ r: PGRow) -> Claimed { Claimed(r) }
    }

    /// Specific rows (the direct path could not apply them), if no other relay holds them.
    struct ClaimIDs: PGStatement {
        static let sql = SQLText.outboxClaimIds
        let ids: [Int64]
        var bindings: [String?] { [pgArray(ids.map(String.init))] }
        static func decode(_ r: PGRow) -> Claimed { Claimed(r) }
    }

    struct Delete: PGStatement {
        static let sql = SQLText.outboxDelete
        let ids: [String]
        var bindings: [String?] { [pgArray(ids)] }
    }

    struct Depth: PGStatement {
        static let sql = SQLText.outboxDepth
        var bindings: [String?] { [] }
        static func decode(_ r: PGRow) -> Int64 { r.int("depth") ?? 0 }
    }
}
