import EngineStoreServer
import Foundation
import LibPQ
import TestHarness
import Testing

/// `engine-store migrate` on an empty database creates nof0's schema (its migrations 001-004, copied
/// under Tests/Fixtures/nof0), and on a database nof0 created it changes nothing of nof0's.
@Suite struct SchemaParityTests {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/nof0")
    static let nof0Migrations = ["001_domain.up.sql", "002_refresh_helpers.up.sql",
                                 "000003_fix_timestamps.up.sql", "000004_optimize_indexes.up.sql"]

    /// A fresh database with nof0's migrations applied, as golang-migrate would.
    static func nof0Database() async throws -> String {
        let services = try await TestServices.shared()
        return try await offPool {
            let db = try services.createDatabase(prefix: "nof0")
            let c = try PGConnection(conninfo: db)
            for file in nof0Migrations {
                _ = try c.exec(try String(contentsOf: fixtures.appendingPathComponent(file), encoding: .utf8))
            }
            return db
        }
    }

    /// One row per schema object, as text: what parity means, object by object.
    struct Schema: Sendable {
        var columns: [String: String] = [:]      // "table.column" -> "type null default"
        var constraints: [String: String] = [:]  // "table: definition" -> name
        var indexes: [String: String] = [:]      // "table: definition without the name" -> name
        var views: [String: String] = [:]        // matview -> definition
        var functions: [String: String] = [:]    // function -> source

        init(_ conninfo: String) throws {
            let c = try PGConnection(conninfo: conninfo)
            let cols = try c.exec("""
                SELECT table_name, column_name, data_type, is_nullable, COALESCE(column_default, '') FROM information_schema.columns
                WHERE table_schema = 'public' UNION ALL
                SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END, ''
                FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind = 'm' AND a.attnum > 0 AND NOT a.attisdropped
                """)
            for i in 0..<cols.rowCount {
                columns["\(cols.string(i, 0)!).\(cols.string(i, 1)!)"] = "\(cols.string(i, 2)!) null=\(cols.string(i, 3)!) default=\(cols.string(i, 4)!)"
            }
            let cons = try c.exec("""
                SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                WHERE connamespace = 'public'::regnamespace AND conrelid <> 0
                """)
            for i in 0..<cons.rowCount { constraints["\(cons.string(i, 0)!): \(cons.string(i, 2)!)"] = cons.string(i, 1)! }
            let idx = try c.exec("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
            for i in 0..<idx.rowCount {
                let name = idx.string(i, 1)!
                let definition = idx.string(i, 2)!.replacingOccurrences(of: "INDEX \(name) ON", with: "INDEX ON")
                indexes["\(idx.string(i, 0)!): \(definition)"] = name
            }
            let mv = try c.exec("SELECT matviewname, definition FROM pg_matviews WHERE schemaname = 'public'")
            for i in 0..<mv.rowCount { views[mv.string(i, 0)!] = mv.string(i, 1)! }
            let fn = try c.exec("SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace")
            for i in 0..<fn.rowCount { functions[fn.string(i, 0)!] = fn.string(i, 1)! }
        }

        /// Tables (and views) that have at least one column.
        var tables: Set<String> { Set(columns.keys.map { String($0.split(separator: ".")[0]) }) }
    }

    /// What EngineStore adds to nof0's tables and may add (DOMAIN.md: its own tables and indexes,
    /// nullable or defaulted columns).
    static func isEngineStoreOwn(_ name: String) -> Bool {
        name.contains("engine_store") || name.hasSuffix(".cache_version")
    }

    @Test func migrateOnAnEmptyDatabaseCreatesNof0sSchema() async throws {
        let nof0 = try await Self.nof0Database()
        let services = try await TestServices.shared()
        let ours: String = try await offPool {
            let db = try services.createDatabase(prefix: "es")
            try Migrations.apply(conninfo: db)
            return db
        }
        let (a, b) = try await offPool { (try Schema(nof0), try Schema(ours)) }
        #expect(a.tables.isSuperset(of: ["symbols", "accounts", "conversations", "conversation_messages", "models",
                                         "v_crypto_prices_latest", "v_leaderboard", "v_since_inception"]))
        // Column by column: name, type, nullability, default.
        for (column, shape) in a.columns.sorted(by: { $0.key < $1.key }) {
            #expect(b.columns[column] == shape, "\(column): nof0 \(shape), ours \(b.columns[column] ?? "missing")")
        }
        // Columns of ours on nof0's tables: only EngineStore's own, and nullable or defaulted.
        for (column, shape) in b.columns where a.tables.contains(String(column.split(separator: ".")[0])) && a.columns[column] == nil {
            #expect(Self.isEngineStoreOwn(column) && (shape.contains("null=YES") || !shape.hasSuffix("default=")), "extra \(column) \(shape)")
        }
        #expect(a.views == b.views)
        #expect(a.functions["refresh_views_nof0"] != nil)
        #expect(a.functions["refresh_views_nof0"] == b.functions["refresh_views_nof0"])
        // Constraints and indexes: every one of nof0's, under nof0's name, except where ours is stricter.
        let knownGaps: Set<String> = [
            // Ours is unique (engine_store_positions_one_open): one open position per model and symbol.
            "positions: CREATE INDEX ON public.positions USING btree (model_id, symbol) WHERE (status = 'open'::text)",
            // EngineStore validates side and status itself (proto-spec §10.3); migration 1 never had these checks.
            "positions: CHECK ((side = ANY (ARRAY['long'::text, 'short'::text, 'flat'::text])))",
            "positions: CHECK ((status = ANY (ARRAY['open'::text, 'closed'::text])))",
        ]
        for (constraint, name) in a.constraints.sorted(by: { $0.key < $1.key }) where !knownGaps.contains(constraint) {
            #expect(b.constraints[constraint] == name, "constraint \(constraint): ours \(b.constraints[constraint] ?? "missing")")
        }
        for (index, name) in a.indexes.sorted(by: { $0.key < $1.key }) where !knownGaps.contains(index) {
            #expect(b.indexes[index] == name, "index \(index): ours \(b.indexes[index] ?? "missing")")
        }
    }

    @Test func migrateOnANof0DatabaseChangesNothingOfNof0s() async throws {
        let nof0 = try await Self.nof0Database()
        let before = try await offPool { try Schema(nof0) }
        let applied = try await offPool { try Migrations.apply(conninfo: nof0) }
        #expect(applied == Migrations.all.map(\.version))
        let after = try await offPool { try Schema(nof0) }
        #expect(after.views == before.views)
        #expect(after.functions["refresh_views_nof0"] == before.functions["refresh_views_nof0"])
        for (column, shape) in before.columns { #expect(after.columns[column] == shape, "\(column) changed") }
        for (column, _) in after.columns where before.columns[column] == nil {
            #expect(Self.isEngineStoreOwn(column), "migrate added \(column) to nof0's database")
        }
        for (constraint, name) in before.constraints { #expect(after.constraints[constraint] == name, "\(constraint) changed") }
        for (index, name) in before.indexes { #expect(after.indexes[index] == name, "\(index) changed") }
        for (index, name) in after.indexes where before.indexes[index] == nil {
            #expect(Self.isEngineStoreOwn(name), "migrate added index \(name) to nof0's database")
        }
        // Running it again is a no-op too.
        #expect(try await offPool { try Migrations.apply(conninfo: nof0) }.isEmpty)
    }
}
