-- migration: cache outbox
-- Cache work owed to Redis, written in the same transaction as the data: what to rebuild, not
-- the values (the relay derives them from Postgres when it runs, so it never writes stale data).
CREATE TABLE IF NOT EXISTS engine_store_outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    ref TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS engine_store_outbox_created ON engine_store_outbox (created_at);
