-- snapshot_64 baseline: a plain per-request SaveSnapshot writer (run with -D n=0). One transaction per
-- request: the idempotency row (method 32, a reply of the service's size) and the equity snapshot
-- upsert the service runs (INSERT … ON CONFLICT (model_id, ts_ms) DO UPDATE), one model of 1000, a
-- fresh timestamp per request. The load tester's snapshot-only run sends no position marks (it has
-- no open positions), so there are no position updates here either; the service is run with
-- --snapshot-min-interval-ms 0 so that it stores every snapshot too.
-- Left out, as the service's own machinery: the per-trader throttle (advisory lock + read of the last
-- snapshot) and the outbox. Keys: model pgb-s1..1000, apart from the service's keys.
\set n :n + 1
\set ts 1764201600000 + :client_id * 1000000000 + :n
\set m random(1, 1000)
\set cents random(990000, 1010000)
BEGIN;
INSERT INTO engine_store_idempotency (key, method, digest, response)
VALUES ('pgb-s-' || :client_id || '-' || :n, 32, '0123456789abcdef',
        convert_to('pgb-s' || :m, 'UTF8') || '\x100118808080808080802020'::bytea);
INSERT INTO account_equity_snapshots (model_id, ts_ms, dollar_equity, realized_pnl, total_unrealized_pnl, cum_pnl_pct,
    sharpe_ratio, since_inception_hourly_marker, since_inception_minute_marker, metadata)
VALUES ('pgb-s' || :m, :ts::int8, :cents / 100.0, 0, 0, NULL, NULL, NULL, NULL, '{}')
ON CONFLICT (model_id, ts_ms) DO UPDATE SET
    dollar_equity = EXCLUDED.dollar_equity, realized_pnl = EXCLUDED.realized_pnl,
    total_unrealized_pnl = EXCLUDED.total_unrealized_pnl, cum_pnl_pct = EXCLUDED.cum_pnl_pct,
    sharpe_ratio = EXCLUDED.sharpe_ratio, since_inception_hourly_marker = EXCLUDED.since_inception_hourly_marker,
    since_inception_minute_marker = EXCLUDED.since_inception_minute_marker, metadata = EXCLUDED.metadata;
COMMIT;
