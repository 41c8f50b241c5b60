-- migration: idempotency keys and trade events
-- Tables of the service's own: idempotency records (kept 24 h by default) and trade events
-- deduplicated by the exchange's trade id.
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
