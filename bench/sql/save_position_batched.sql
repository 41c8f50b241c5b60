-- save_position_batched_share baseline: the save_position_update.sql writes as multi-row statements,
-- 60 rows per transaction (run with 2 pgbench clients; rows/s = tps x 60): 60 idempotency rows in one
-- INSERT, then one 60-row positions upsert INSERT … ON CONFLICT … DO UPDATE. Key space 20 models x
-- 50 symbols (pgb-b00..19 x S00..49), numbered k = 0..999 in (model_id, symbol) order; each
-- transaction takes the 60 consecutive keys s..s+59: distinct keys, so no "ON CONFLICT DO UPDATE
-- command cannot affect row a second time", and ascending, so the two clients lock rows in one order
-- and cannot deadlock. The rows come from generate_series instead of a 60-tuple VALUES list (the same
-- rows; a little less to parse). New rows' ids end in a random suffix (see save_position_update.sql).
-- Left out, as in save_position_update.sql: outbox and cache_version.
\set s random(0, 940)
\set k random(1, 9000000000000000000)
\set cents random(9500, 10500)
\set sfx random(10000000, 99999999)
BEGIN;
INSERT INTO engine_store_idempotency (key, method, digest, response)
SELECT 'pgb-b-' || :client_id || '-' || :k || '-' || i, 16, '0123456789abcdef',
       convert_to('pgb-b' || lpad((i / 50)::text, 2, '0') || '|S' || lpad((i % 50)::text, 2, '0') || '|1764201600000|00000000', 'UTF8')
       || '\x100018808080808080'::bytea
FROM generate_series(:s::int, :s::int + 59) AS i;
INSERT INTO positions AS p (id, model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
                            confidence, commission, current_price, status, cache_version)
SELECT 'pgb-b' || lpad((i / 50)::text, 2, '0') || '|S' || lpad((i % 50)::text, 2, '0') || '|1764201600000|' || :sfx,
       'pgb-b' || lpad((i / 50)::text, 2, '0'), 'S' || lpad((i % 50)::text, 2, '0'), 'load', 'long', 2, 100, 1764201600000, 5,
       0.5, 0.05, (:cents + i) / 100.0, 'open', 0
FROM generate_series(:s::int, :s::int + 59) AS i
ON CONFLICT (model_id, symbol) WHERE status = 'open'
DO UPDATE SET current_price = EXCLUDED.current_price, updated_at = now()
RETURNING p.id, p.updated_at;
COMMIT;
