-- Baseline of the ticks part of mix_64 (no line of its own): a plain per-request IngestPriceTicks
-- writer of the load tester's batch (100 ticks over 16 symbols per client; run with -D n=0). One
-- transaction per request: the idempotency row (method 48), the 100 price_ticks rows in one INSERT
-- (the service uses COPY; pgbench cannot, so generate_series feeds one multi-row INSERT), and the
-- price_latest upsert of the batch's newest tick per symbol, as the service runs it (never back in
-- time). Left out, as the service's own machinery: nothing (ticks write no outbox rows).
-- Keys: symbol PGB-T<client>-<0..15>, apart from the service's symbols.
\set n :n + 1
\set ts 1764201600000 + :client_id * 1000000000 + :n * 100
BEGIN;
INSERT INTO engine_store_idempotency (key, method, digest, response)
VALUES ('pgb-t-' || :client_id || '-' || :n, 48, '0123456789abcdef', '\x08641010'::bytea);
INSERT INTO price_ticks (provider, symbol, price, ts_ms, volume, raw)
SELECT 'load', 'PGB-T' || :client_id || '-' || (i % 16), 100 + (i % 100) / 100.0,
       :ts::int8 + i, 1, NULL
FROM generate_series(0, 99) AS i;
INSERT INTO price_latest AS l (provider, symbol, price, ts_ms, raw)
SELECT 'load', 'PGB-T' || :client_id || '-' || j, 100 + (84 + j) / 100.0,
       :ts::int8 + 84 + j, NULL
FROM generate_series(0, 15) AS j
ON CONFLICT (provider, symbol) DO UPDATE SET price = EXCLUDED.price, ts_ms = EXCLUDED.ts_ms, raw = EXCLUDED.raw,
    updated_at = now()
WHERE l.ts_ms < EXCLUDED.ts_ms;
COMMIT;
