-- trade_event_64 baseline: a plain per-request PublishTradeEvent writer (run with -D n=0). One
-- transaction per request: the idempotency row (method 18, a reply of the service's size) and the
-- trade event insert the service runs, deduplicated by trade id (ON CONFLICT (trade_id) DO NOTHING);
-- every trade id is new, like the load tester's. The same fields as the load tester's events.
-- Left out, as the service's own machinery: the outbox row. Keys: trade id pgb-e-<client>-<n>,
-- model pgb-m1..1000, apart from the service's keys.
\set n :n + 1
\set ts 1764201600000 + :client_id * 1000000000 + :n
\set m random(1, 1000)
BEGIN;
INSERT INTO engine_store_idempotency (key, method, digest, response)
VALUES ('pgb-ek-' || :client_id || '-' || :n, 18, '0123456789abcdef',
        '\x0800'::bytea || convert_to('pgb-e-' || :client_id || '-' || :n, 'UTF8'));
INSERT INTO engine_store_trade_events (trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload)
VALUES ('pgb-e-' || :client_id || '-' || :n, 'pgb-m' || :m, 'BTC', 'fill', 'long', 97000, 0.01, 0.01,
        :ts::int8, NULL)
ON CONFLICT (trade_id) DO NOTHING RETURNING 1;
COMMIT;
