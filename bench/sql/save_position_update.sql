-- save_position_update_64 baseline: a plain per-request SavePosition writer on the update-heavy key space
-- of the service run (20 models x 50 symbols: pgb-u00..19 x S00..49, apart from the service's keys).
-- One transaction per request: the idempotency row (key, method 16, digest, a reply of the service's
-- size) and one positions upsert INSERT … ON CONFLICT (model_id, symbol) WHERE status = 'open' DO UPDATE
-- (the partial unique index the service relies on). After the first request for a key every request
-- is a mark-to-market update (current_price, updated_at), the load tester's update. The new row's id
-- ends in a random suffix, as the service's does: two requests opening one key at once must meet on
-- the arbiter index, not fail on the id's primary key.
-- Left out, as the service's own machinery: the outbox row and cache_version (0 on insert, so no
-- sequence is touched; not bumped on update).
\set m random(0, 19)
\set s random(0, 49)
\set k random(1, 9000000000000000000)
\set cents random(9500, 10500)
\set sfx random(10000000, 99999999)
BEGIN;
INSERT INTO engine_store_idempotency (key, method, digest, response)
VALUES ('pgb-u-' || :client_id || '-' || :k, 16, '0123456789abcdef',
        convert_to('pgb-u' || lpad(:m::text, 2, '0') || '|S' || lpad(:s::text, 2, '0') || '|1764201600000|00000000', 'UTF8') || '\x100018808080808080'::bytea);
INSERT INTO positions AS p (id, model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
                            confidence, commission, current_price, status, cache_version)
VALUES ('pgb-u' || lpad(:m::text, 2, '0') || '|S' || lpad(:s::text, 2, '0') || '|1764201600000|' || :sfx,
        'pgb-u' || lpad(:m::text, 2, '0'), 'S' || lpad(:s::text, 2, '0'), 'load', 'long', 2, 100, 1764201600000, 5,
        0.5, 0.05, :cents / 100.0, 'open', 0)
ON CONFLICT (model_id, symbol) WHERE status = 'open'
DO UPDATE SET current_price = EXCLUDED.current_price, updated_at = now()
RETURNING p.id, p.updated_at;
COMMIT;
