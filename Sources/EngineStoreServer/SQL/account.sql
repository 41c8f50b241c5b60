-- Account equity snapshots.

-- name: snapshot_lock_trader_64
-- The per-model snapshot throttle lock. 64-bit key: a collision of two models would put one lock at
-- two places of LockOrder.
SELECT pg_advisory_xact_lock(hashtextextended('engine_store.snapshot:' || $1, 0));

-- name: snapshot_last
SELECT ts_ms FROM account_equity_snapshots WHERE model_id = $1 ORDER BY ts_ms DESC LIMIT 1;

-- name: snapshot_last_rows
-- snapshot_last for several traders of a two-phase batch ($1 their ids, see PostgresWorker.readsForms):
-- `ord` (the trader's place in $1, from 1) and the time of its newest stored snapshot; no row for a
-- trader with none. The batch sends it after every throttle lock it takes, so it sees what the
-- lock's previous holders committed.
SELECT t.ord, s.ts_ms
FROM unnest($1::text[]) WITH ORDINALITY AS t(model_id, ord)
CROSS JOIN LATERAL (
    SELECT ts_ms FROM account_equity_snapshots a WHERE a.model_id = t.model_id ORDER BY ts_ms DESC LIMIT 1
) s
ORDER BY t.ord;

-- name: snapshot_upsert
INSERT INTO account_equity_snapshots (model_id, ts_ms, dollar_equity, realized_pnl, total_unrealized_pnl, cum_pnl_pct,
    sharpe_ratio, since_inception_hourly_marker, since_inception_minute_marker, metadata)
VALUES ($1, $2, $3, COALESCE($4::float8, 0), COALESCE($5::float8, 0), $6, $7, $8, $9, COALESCE($10::jsonb, '{}'))
ON CONFLICT (model_id, ts_ms) DO UPDATE SET
    dollar_equity = EXCLUDED.dollar_equity, realized_pnl = EXCLUDED.realized_pnl,
    total_unrealized_pnl = EXCLUDED.total_unrealized_pnl, cum_pnl_pct = EXCLUDED.cum_pnl_pct,
    sharpe_ratio = EXCLUDED.sharpe_ratio, since_inception_hourly_marker = EXCLUDED.since_inception_hourly_marker,
    since_inception_minute_marker = EXCLUDED.since_inception_minute_marker, metadata = EXCLUDED.metadata;

-- name: snapshot_upsert_rows
-- snapshot_upsert for several traders of a two-phase batch: its parameters as arrays, one element per
-- row (see PostgresWorker.rowsForms). A trader appears once: a batch's second snapshot of a trader
-- waits for the next transaction.
INSERT INTO account_equity_snapshots (model_id, ts_ms, dollar_equity, realized_pnl, total_unrealized_pnl, cum_pnl_pct,
    sharpe_ratio, since_inception_hourly_marker, since_inception_minute_marker, metadata)
SELECT model_id, ts_ms, dollar_equity, COALESCE(realized_pnl, 0), COALESCE(total_unrealized_pnl, 0), cum_pnl_pct,
       sharpe_ratio, hourly, minute, COALESCE(metadata, '{}')
FROM unnest($1::text[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::int4[],
            $9::int4[], $10::jsonb[])
    AS r(model_id, ts_ms, dollar_equity, realized_pnl, total_unrealized_pnl, cum_pnl_pct, sharpe_ratio, hourly, minute, metadata)
ON CONFLICT (model_id, ts_ms) DO UPDATE SET
    dollar_equity = EXCLUDED.dollar_equity, realized_pnl = EXCLUDED.realized_pnl,
    total_unrealized_pnl = EXCLUDED.total_unrealized_pnl, cum_pnl_pct = EXCLUDED.cum_pnl_pct,
    sharpe_ratio = EXCLUDED.sharpe_ratio, since_inception_hourly_marker = EXCLUDED.since_inception_hourly_marker,
    since_inception_minute_marker = EXCLUDED.since_inception_minute_marker, metadata = EXCLUDED.metadata;

-- name: snapshot_store_batch
-- SaveSnapshot for a batch of one-snapshot requests without marks, in one round trip: see
-- engine_store_snapshot_batch (migration 009). $1…$10 as snapshot_upsert_rows, $11 the throttle's
-- interval (ms, 0: none), $12 and $13 the reply's bytes around what Postgres decides (hex), then key,
-- method, digest and the reply of a snapshot stored as its trader's newest (hex), one element per
-- request. One row per request: `ord`, `stored`, `last_stored_ms`.
SELECT ord, stored, last_stored_ms FROM engine_store_snapshot_batch($1::text[], $2::int8[], $3::float8[],
    $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::int4[], $9::int4[], $10::jsonb[], $11::int8[],
    $12::text[], $13::text[], $14::text[], $15::smallint[], $16::text[], $17::text[])
