-- migration: cache versions
-- Every row a cached document is built from carries `cache_version`, set from one sequence by
-- each statement that changes the row, while it holds the row lock: for one row the versions
-- grow in commit order, so Redis can refuse a value older than the one it holds
-- (docs/cache-consistency.md). Rows written by nof0's own writer keep 0, the oldest version.
-- `cache_version` is deliberately not indexed: an indexed column would make every position
-- update a non-HOT update (one more entry in every index). The relay's per-model read uses
-- idx_positions_model. The trades index serves the recent-trades order of the read path.
CREATE SEQUENCE IF NOT EXISTS engine_store_cache_version;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS cache_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE positions ALTER COLUMN cache_version SET DEFAULT nextval('engine_store_cache_version');
ALTER TABLE trader_state ADD COLUMN IF NOT EXISTS cache_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE trader_state ALTER COLUMN cache_version SET DEFAULT nextval('engine_store_cache_version');
ALTER TABLE model_analytics ADD COLUMN IF NOT EXISTS cache_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE model_analytics ALTER COLUMN cache_version SET DEFAULT nextval('engine_store_cache_version');
CREATE INDEX IF NOT EXISTS engine_store_trades_recent ON trades (model_id, exit_ts_ms DESC, id COLLATE "C" DESC);
