import EngineStoreWire
import LibPQ

/// Account equity snapshots (SQL/account.sql). Marks of open positions go through `PositionStore.Mark`.
enum AccountStore {
    /// The per-model snapshot throttle lock (see `LockOrder.snapshot`).
    struct LockModel: PGStatement {
        static let sql = SQLText.snapshotLockTrader64
        let model: String
        var bindings: [String?] { [model] }
    }

    /// The time of the model's newest stored snapshot.
    struct Last: PGStatement {
        static let sql = SQLText.snapshotLast
        let model: String
        var bindings: [String?] { [model] }
        static func decode(_ r: PGRow) -> Int64? { r.int("ts_ms") }
    }

    struct Upsert: PGStatement {
        static let sql = SQLText.snapshotUpsert
        let snapshot: AccountSnapshot
        var bindings: [String?] {
            let s = snapshot
            return [s.modelID, String(s.timestampMs), pgText(s.dollarEquity), s.realizedPnl.map(pgText),
                    s.totalUnrealizedPnl.map(pgText), s.cumPnlPct.map(pgText), s.sharpeRatio.map(pgText),
                    s.sinceInceptionHourlyMarker.map(String.init), s.sinceInceptionMinuteMarker.map(String.init), s.metadataJSON]
        }
    }
}
