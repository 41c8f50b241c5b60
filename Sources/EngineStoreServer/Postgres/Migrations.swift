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

    public static let all: [Migration] = [
        Migration(version: 1, name: "nof0 tables", sql: nof0Tables),
        Migration(version: 2, name: "one open position per model and symbol", sql: openPositionUniqueness),
        Migration(version: 3, name: "idempotency keys and trade events", sql: idempotencyAndTradeEvents),
        Migration(version: 4, name: "varint encoder for recording replies in SQL", sql: varintFunction),
        Migration(version: 5, name: "cache outbox", sql: outbox),
        Migration(version: 6, name: "cache versions", sql: cacheVersions),
        Migration(version: 7, name: "the rest of nof0's schema: conversations, views", sql: Nof0Schema.rest),
    ]

    /// Applies pending migrations; returns the versions applied by this call.
    @discardableResult
    public static func apply(conninfo: String) throws -> [Int] {
        let connection = try PGConnection(conninfo: conninfo, applicationName: "engine-store-migrate")
        return try apply(on: connection)
    }

    @discardableResult
    public static func apply(on connection: PGConnection) throws -> [Int] {
        try connection.exec("""
            CREATE TABLE IF NOT EXISTS engine_store_migrations (
                version INT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """)
        var applied: [Int] = []
        for migration in all {
            try connection.exec("BEGIN")
            do {
                try connection.execParams("SELECT pg_advisory_xact_lock($1)", [String(advisoryLockKey)])
                let done = try connection.execParams(
                    "SELECT 1 FROM engine_store_migrations WHERE version = $1", [String(migration.version)])
                if done.rowCount == 0 {
                    try connection.exec(migration.sql)
                    try connection.execParams(
                        "INSERT INTO engine_store_migrations (version, name) VALUES ($1, $2)",
                        [String(migration.version), migration.name])
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
        let r = try connection.exec("SELECT COALESCE(max(version), 0) FROM engine_store_migrations")
        return Int(r.int(0, 0) ?? 0)
    }

    public struct MigrationError: Error, CustomStringConvertible {
        public let version: Int
        public let name: String
        public let underlying: String
        public var description: String { "migration \(version) (\(name)) failed: \(underlying)" }
    }

    /// Index names are nof0's, so IF NOT EXISTS finds nof0's (older databases keep our old names).
    static let nof0Tables = """
        CREATE TABLE IF NOT EXISTS models (
            id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            description TEXT,
            metadata JSONB NOT NULL DEFAULT '{}',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        CREATE TABLE IF NOT EXISTS positions (
            id TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            exchange_provider TEXT NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL DEFAULT 'long',
            status TEXT NOT NULL DEFAULT 'open',
            entry_oid BIGINT,
            risk_usd DOUBLE PRECISION,
            confidence DOUBLE PRECISION,
            index_col JSONB,
            exit_plan JSONB,
            entry_time_ms BIGINT NOT NULL,
            entry_price DOUBLE PRECISION NOT NULL,
            tp_oid BIGINT,
            margin DOUBLE PRECISION,
            wait_for_fill BOOLEAN NOT NULL DEFAULT false,
            sl_oid BIGINT,
            current_price DOUBLE PRECISION,
            closed_pnl DOUBLE PRECISION,
            liquidation_price DOUBLE PRECISION,
            commission DOUBLE PRECISION,
            leverage DOUBLE PRECISION,
            slippage DOUBLE PRECISION,
            quantity DOUBLE PRECISION NOT NULL,
            unrealized_pnl DOUBLE PRECISION,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS idx_positions_model ON positions (model_id);
        CREATE INDEX IF NOT EXISTS idx_positions_symbol ON positions (symbol);
        CREATE INDEX IF NOT EXISTS idx_positions_status_model ON positions (status, model_id);

        CREATE TABLE IF NOT EXISTS trades (
            id TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            exchange_provider TEXT NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            trade_type TEXT,
            trade_id TEXT,
            quantity DOUBLE PRECISION,
            leverage DOUBLE PRECISION,
            confidence DOUBLE PRECISION,
            entry_price DOUBLE PRECISION,
            entry_ts_ms BIGINT NOT NULL,
            entry_human_time TEXT,
            entry_sz DOUBLE PRECISION,
            entry_tid BIGINT,
            entry_oid BIGINT,
            entry_crossed BOOLEAN NOT NULL DEFAULT false,
            entry_liquidation JSONB,
            entry_commission_dollars DOUBLE PRECISION,
            entry_closed_pnl DOUBLE PRECISION,
            exit_price DOUBLE PRECISION,
            exit_ts_ms BIGINT,
            exit_human_time TEXT,
            exit_sz DOUBLE PRECISION,
            exit_tid BIGINT,
            exit_oid BIGINT,
            exit_crossed BOOLEAN,
            exit_liquidation JSONB,
            exit_commission_dollars DOUBLE PRECISION,
            exit_closed_pnl DOUBLE PRECISION,
            exit_plan JSONB,
            realized_gross_pnl DOUBLE PRECISION,
            realized_net_pnl DOUBLE PRECISION,
            total_commission_dollars DOUBLE PRECISION,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS idx_trades_model_entry_ts_desc ON trades (model_id, entry_ts_ms DESC);
        CREATE INDEX IF NOT EXISTS idx_trades_exit_oid ON trades (exit_oid);

        CREATE TABLE IF NOT EXISTS account_equity_snapshots (
            id BIGSERIAL PRIMARY KEY,
            model_id TEXT NOT NULL,
            ts_ms BIGINT NOT NULL,
            dollar_equity DOUBLE PRECISION NOT NULL,
            realized_pnl DOUBLE PRECISION NOT NULL DEFAULT 0,
            total_unrealized_pnl DOUBLE PRECISION NOT NULL DEFAULT 0,
            cum_pnl_pct DOUBLE PRECISION,
            sharpe_ratio DOUBLE PRECISION,
            since_inception_hourly_marker INT,
            since_inception_minute_marker INT,
            metadata JSONB NOT NULL DEFAULT '{}',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (model_id, ts_ms)
        );
        CREATE INDEX IF NOT EXISTS idx_equity_snapshots_model_ts_desc ON account_equity_snapshots (model_id, ts_ms DESC);

        CREATE TABLE IF NOT EXISTS decision_cycles (
            id BIGSERIAL PRIMARY KEY,
            model_id TEXT NOT NULL,
            cycle_number INT,
            prompt_digest TEXT,
            cot_trace TEXT,
            decisions JSONB,
            success BOOLEAN NOT NULL DEFAULT false,
            error_message TEXT,
            executed_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS idx_decision_cycles_model_executed_at_desc ON decision_cycles (model_id, executed_at DESC);

        CREATE TABLE IF NOT EXISTS model_analytics (
            model_id TEXT PRIMARY KEY,
            payload JSONB NOT NULL,
            server_time_ms BIGINT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            metadata JSONB NOT NULL DEFAULT '{}'
        );

        CREATE TABLE IF NOT EXISTS trader_state (
            trader_id TEXT PRIMARY KEY,
            exchange_provider TEXT NOT NULL,
            market_provider TEXT NOT NULL,
            allocation_pct DOUBLE PRECISION,
            cooldown JSONB NOT NULL DEFAULT '{}',
            risk_guards JSONB NOT NULL DEFAULT '{}',
            last_decision_at TIMESTAMPTZ,
            pause_until TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        CREATE TABLE IF NOT EXISTS price_ticks (
            id BIGSERIAL PRIMARY KEY,
            provider TEXT NOT NULL,
            symbol TEXT NOT NULL,
            price DOUBLE PRECISION NOT NULL,
            ts_ms BIGINT NOT NULL,
            volume DOUBLE PRECISION,
            raw JSONB,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS idx_price_ticks_symbol_ts_desc ON price_ticks (symbol, ts_ms DESC);
        CREATE INDEX IF NOT EXISTS idx_price_ticks_provider_symbol_ts_desc ON price_ticks (provider, symbol, ts_ms DESC);

        CREATE TABLE IF NOT EXISTS price_latest (
            id BIGSERIAL PRIMARY KEY,
            provider TEXT NOT NULL,
            symbol TEXT NOT NULL,
            price DOUBLE PRECISION NOT NULL,
            ts_ms BIGINT NOT NULL,
            raw JSONB,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (provider, symbol)
        );

        CREATE TABLE IF NOT EXISTS market_assets (
            id BIGSERIAL PRIMARY KEY,
            provider TEXT NOT NULL,
            symbol TEXT NOT NULL,
            name TEXT,
            sz_decimals INT,
            max_leverage DOUBLE PRECISION,
            only_isolated BOOLEAN,
            margin_table_id INT,
            is_delisted BOOLEAN NOT NULL DEFAULT false,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (provider, symbol)
        );

        CREATE TABLE IF NOT EXISTS market_asset_ctx (
            id BIGSERIAL PRIMARY KEY,
            provider TEXT NOT NULL,
            symbol TEXT NOT NULL,
            funding DOUBLE PRECISION,
            open_interest DOUBLE PRECISION,
            oracle_px DOUBLE PRECISION,
            mark_px DOUBLE PRECISION,
            mid_px DOUBLE PRECISION,
            impact_pxs JSONB,
            prev_day_px DOUBLE PRECISION,
            day_ntl_vlm DOUBLE PRECISION,
            day_base_vlm DOUBLE PRECISION,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (provider, symbol)
        );
        """

    /// nof0's own index on (model_id, symbol) WHERE status = 'open' is not unique; ours is, so the
    /// database itself refuses a second open position for a model and symbol.
    static let openPositionUniqueness = """
        CREATE UNIQUE INDEX IF NOT EXISTS engine_store_positions_one_open
            ON positions (model_id, symbol) WHERE status = 'open';
        """

    /// Tables of the service's own: idempotency records (kept 24 h by default) and trade events
    /// deduplicated by the exchange's trade id.
    static let idempotencyAndTradeEvents = """
        CREATE TABLE IF NOT EXISTS engine_store_idempotency (
            key TEXT PRIMARY KEY,
            method SMALLINT NOT NULL,
            digest TEXT NOT NULL,
            response BYTEA,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS engine_store_idempotency_created ON engine_store_idempotency (created_at);

        CREATE TABLE IF NOT EXISTS engine_store_trade_events (
            trade_id TEXT PRIMARY KEY,
            model_id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            kind TEXT NOT NULL,
            side TEXT,
            price DOUBLE PRECISION,
            size DOUBLE PRECISION,
            fee DOUBLE PRECISION,
            ts_ms BIGINT NOT NULL,
            payload JSONB,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS engine_store_trade_events_model_ts ON engine_store_trade_events (model_id, ts_ms DESC);
        """

    /// Protocol-buffer varint of a non-negative bigint, so a statement can record its own reply
    /// (see SavePosition's pipelined statement).
    static let varintFunction = """
        CREATE OR REPLACE FUNCTION engine_store_varint(v bigint) RETURNS bytea
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
        DECLARE
            out bytea := ''::bytea;
            b int;
        BEGIN
            IF v < 0 THEN RAISE EXCEPTION 'engine_store_varint: negative value %', v; END IF;
            LOOP
                b := (v & 127)::int;
                v := v >> 7;
                IF v = 0 THEN
                    RETURN out || set_byte('\\x00'::bytea, 0, b);
                END IF;
                out := out || set_byte('\\x00'::bytea, 0, b | 128);
            END LOOP;
        END
        $fn$;
        """

    /// Cache work owed to Redis, written in the same transaction as the data: what to rebuild, not
    /// the values (the relay derives them from Postgres when it runs, so it never writes stale data).
    static let outbox = """
        CREATE TABLE IF NOT EXISTS engine_store_outbox (
            id BIGSERIAL PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            ref TEXT NOT NULL DEFAULT '',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS engine_store_outbox_created ON engine_store_outbox (created_at);
        """

    /// Every row a cached document is built from carries `cache_version`, set from one sequence by
    /// each statement that changes the row, while it holds the row lock: for one row the versions
    /// grow in commit order, so Redis can refuse a value older than the one it holds
    /// (docs/cache-consistency.md). Rows written by nof0's own writer keep 0, the oldest version.
    /// `cache_version` is deliberately not indexed: an indexed column would make every position
    /// update a non-HOT update (one more entry in every index). The relay's per-model read uses
    /// idx_positions_model. The trades index serves the recent-trades order of the read path.
    static let cacheVersions = """
        CREATE SEQUENCE IF NOT EXISTS engine_store_cache_version;
        ALTER TABLE positions ADD COLUMN IF NOT EXISTS cache_version BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE positions ALTER COLUMN cache_version SET DEFAULT nextval('engine_store_cache_version');
        ALTER TABLE trader_state ADD COLUMN IF NOT EXISTS cache_version BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE trader_state ALTER COLUMN cache_version SET DEFAULT nextval('engine_store_cache_version');
        ALTER TABLE model_analytics ADD COLUMN IF NOT EXISTS cache_version BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE model_analytics ALTER COLUMN cache_version SET DEFAULT nextval('engine_store_cache_version');
        CREATE INDEX IF NOT EXISTS engine_store_trades_recent ON trades (model_id, exit_ts_ms DESC, id COLLATE "C" DESC);
        """
}
