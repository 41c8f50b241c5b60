-- migration: the rest of nof0's schema: conversations, views
-- The part of nof0's schema (its migrations 001-004) that migration 1 does not create: `symbols`,
-- `accounts`, `conversations`, `conversation_messages`, the materialized views of nof0's 002 and
-- their refresh function. Columns, constraints, indexes and view queries are nof0's own, so a
-- database created by EngineStore alone serves nof0's read side (SchemaParityTests compares both
-- column by column). Everything is IF NOT EXISTS (the function: created only when missing), so on
-- a database nof0 created this changes nothing.
CREATE TABLE IF NOT EXISTS symbols (
    symbol TEXT PRIMARY KEY,
    base_asset TEXT,
    quote_asset TEXT,
    base_precision INT,
    quote_precision INT,
    tick_size DOUBLE PRECISION,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS accounts (
    model_id TEXT PRIMARY KEY,
    exchange_provider TEXT NOT NULL,
    account_tag TEXT,
    margin_mode TEXT,
    base_currency TEXT,
    leverage_mode TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE IF NOT EXISTS conversations (
    id BIGSERIAL PRIMARY KEY,
    model_id TEXT NOT NULL,
    topic TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_conversations_model ON conversations(model_id);

CREATE TABLE IF NOT EXISTS conversation_messages (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    ts_ms BIGINT,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_conversation_messages_conv_ts ON conversation_messages(conversation_id, ts_ms);

CREATE INDEX IF NOT EXISTS idx_price_latest_symbol ON price_latest(symbol);

-- nof0's 000003: a database nof0 left at 002 lacks these columns (migration 1 skipped the tables).
ALTER TABLE market_assets ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT NOW();
ALTER TABLE price_latest ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT NOW();
ALTER TABLE market_asset_ctx ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT NOW();
ALTER TABLE trader_state ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT NOW();

-- nof0's 002, with IF NOT EXISTS where nof0 drops and recreates (a nof0 database keeps its views).
CREATE MATERIALIZED VIEW IF NOT EXISTS v_crypto_prices_latest AS
SELECT
    pl.provider,
    pl.symbol,
    pl.price,
    pl.ts_ms AS timestamp_ms,
    pl.updated_at
FROM price_latest pl;
CREATE UNIQUE INDEX IF NOT EXISTS idx_v_crypto_prices_latest_symbol ON v_crypto_prices_latest(provider, symbol);

CREATE MATERIALIZED VIEW IF NOT EXISTS v_leaderboard AS
WITH latest_snapshot AS (
    SELECT DISTINCT ON (aes.model_id)
        aes.model_id,
        aes.ts_ms,
        aes.dollar_equity,
        aes.realized_pnl,
        aes.total_unrealized_pnl,
        aes.cum_pnl_pct,
        aes.sharpe_ratio,
        aes.since_inception_hourly_marker,
        aes.since_inception_minute_marker
    FROM account_equity_snapshots aes
    ORDER BY aes.model_id, aes.ts_ms DESC
),
trade_stats AS (
    SELECT
        t.model_id,
        COUNT(*) AS num_trades,
        COUNT(*) FILTER (WHERE t.realized_net_pnl > 0) AS num_wins,
        COUNT(*) FILTER (WHERE t.realized_net_pnl <= 0) AS num_losses,
        COALESCE(SUM(GREATEST(t.realized_net_pnl, 0)), 0) AS win_dollars,
        COALESCE(ABS(SUM(LEAST(t.realized_net_pnl, 0))), 0) AS lose_dollars
    FROM trades t
    GROUP BY t.model_id
)
SELECT
    ls.model_id,
    COALESCE(m.display_name, ls.model_id) AS display_name,
    ls.dollar_equity AS equity,
    COALESCE(ts.num_trades, 0) AS num_trades,
    COALESCE(ts.num_wins, 0) AS num_wins,
    COALESCE(ts.num_losses, 0) AS num_losses,
    COALESCE(ts.win_dollars, 0) AS win_dollars,
    COALESCE(ts.lose_dollars, 0) AS lose_dollars,
    COALESCE(ls.cum_pnl_pct, 0) AS return_pct,
    COALESCE(ls.sharpe_ratio, 0) AS sharpe
FROM latest_snapshot ls
LEFT JOIN trade_stats ts ON ts.model_id = ls.model_id
LEFT JOIN models m ON m.id = ls.model_id;
CREATE UNIQUE INDEX IF NOT EXISTS idx_v_leaderboard_model ON v_leaderboard(model_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS v_since_inception AS
WITH initial_equity AS (
    SELECT DISTINCT ON (aes.model_id)
        aes.model_id,
        aes.ts_ms AS inception_ts_ms,
        aes.dollar_equity AS initial_equity
    FROM account_equity_snapshots aes
    ORDER BY aes.model_id, aes.ts_ms ASC
),
invocations AS (
    SELECT
        dc.model_id,
        COUNT(*) AS num_invocations
    FROM decision_cycles dc
    GROUP BY dc.model_id
)
SELECT
    aes.model_id,
    aes.ts_ms AS timestamp_ms,
    CASE
        WHEN ie.initial_equity IS NULL OR ie.initial_equity = 0
            THEN NULL
        ELSE aes.dollar_equity / ie.initial_equity
    END AS nav_since_inception,
    ie.inception_ts_ms AS inception_ts_ms,
    COALESCE(inv.num_invocations, 0) AS num_invocations
FROM account_equity_snapshots aes
JOIN initial_equity ie ON ie.model_id = aes.model_id
LEFT JOIN invocations inv ON inv.model_id = aes.model_id;
CREATE INDEX IF NOT EXISTS idx_v_since_inception_model_ts ON v_since_inception(model_id, timestamp_ms DESC);

DO $create$
BEGIN
    IF to_regprocedure('refresh_views_nof0()') IS NULL THEN
        CREATE FUNCTION refresh_views_nof0()
        RETURNS void
        LANGUAGE plpgsql
        AS $$
BEGIN
    REFRESH MATERIALIZED VIEW v_crypto_prices_latest;
    REFRESH MATERIALIZED VIEW v_leaderboard;
    REFRESH MATERIALIZED VIEW v_since_inception;
END;
$$;
    END IF;
END
$create$;

-- Ours: the conversations cache's rebuild reads a model's newest conversations (nof0's index on
-- model_id alone would sort all of them).
CREATE INDEX IF NOT EXISTS engine_store_conversations_recent ON conversations (model_id, id DESC);
