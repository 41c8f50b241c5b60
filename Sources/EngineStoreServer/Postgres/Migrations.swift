import LibPQ

/// Versioned, idempotent schema changes. Each runs once, in its own transaction, under an advisory
/// lock so that several instances starting together apply it once. Every statement is written to
/// succeed on a database that already holds nof0's tables (IF NOT EXISTS everywhere); we only add
/// tables of our own, indexes, and nullable or defaulted columns.
public enum Migrations {
    public struct Migration: Sendable {
        public let version: Int
        public let name: String
        public let sql: String
    }

    /// Arbitrary constant: "ES" "MG" in ASCII.
    static let advisoryLockKey = 0x4553_4D47

    /// SQL/migrations/NNN_*.sql, embedded by scripts/gen-sql: the number is the version recorded in
    /// engine_store_migrations, the file's first line the name.
    public static let all: [Migration] = MigrationText.all.map { Migration(version: $0.version, name: $0.name, sql: $0.sql) }

    /// Applies pending migrations; returns the versions applied by this call.
    @discardableResult
    public static func apply(conninfo: String) throws -> [Int] {
        let connection = try PGConnection(conninfo: conninfo, applicationName: "engine-store-migrate")
        return try apply(on: connection)
    }

    @discardableResult
    public static func apply(on connection: PGConnection) throws -> [Int] {
        try connection.exec(SQLText.migrationsTable.text)
        var applied: [Int] = []
        for migration in all {
            try connection.exec("BEGIN")
            do {
                try connection.execParams(SQLText.migrationsLock.text, [String(advisoryLockKey)])
                let done = try connection.execParams(SQLText.migrationApplied.text, [String(migration.version)])
                if done.rowCount == 0 {
                    try connection.exec(migration.sql)
                    try connection.execParams(SQLText.migrationRecord.text, [String(migration.version), migration.name])
                    applied.append(migration.version)
                }
                try connection.exec("COMMIT")
            } catch {
                _ = try? connection.exec("ROLLBACK")
                throw MigrationError(version: migration.version, name: migration.name, underlying: "\(error)")
            }
        }
        return applied
    }

    public static func currentVersion(on connection: PGConnection) throws -> Int {
        let r = try connection.exec(SQLText.migrationsCurrent.text)
        return r.rowCount == 1 ? Int(PGRow(r, 0).int("version") ?? 0) : 0
    }

    public struct MigrationError: Error, CustomStringConvertible {
        public let version: Int
        public let name: String
        public let underlying: String
        public var description: String { "migration \(version) (\(name)) failed: \(underlying)" }
    }
}
