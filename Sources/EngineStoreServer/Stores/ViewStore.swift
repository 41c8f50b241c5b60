import LibPQ

/// nof0's materialized views (SQL/views.sql): the statements of ViewRefresher.
enum ViewStore {
    struct TryLock: PGStatement {
        static let sql = SQLText.viewsTryLock
        let key: Int
        var bindings: [String?] { [String(key)] }
        static func decode(_ r: PGRow) -> Bool { r.bool("pg_try_advisory_lock") ?? false }
    }

    struct Unlock: PGStatement {
        static let sql = SQLText.viewsUnlock
        let key: Int
        var bindings: [String?] { [String(key)] }
    }

    /// Which of `views` exist, in that order, and whether each can be refreshed CONCURRENTLY.
    struct Plan: PGStatement {
        static let sql = SQLText.viewsPlan
        let views: [String]
        var bindings: [String?] { [pgArray(views)] }
        static func decode(_ r: PGRow) -> (name: String, concurrently: Bool) {
            (r.string("name") ?? "", r.bool("concurrently") == true)
        }
    }
}
