-- Market data: ticks, latest prices, asset metadata and contexts.

-- name: price_ticks_copy
-- COPY in the text format (IngestTicksBody.copyText builds the data).
COPY price_ticks (provider, symbol, price, ts_ms, volume, raw) FROM STDIN;

-- fragment: price_latest_conflict
ON CONFLICT (provider, symbol) DO UPDATE SET price = EXCLUDED.price, ts_ms = EXCLUDED.ts_ms, raw = EXCLUDED.raw,
    updated_at = now()
WHERE l.ts_ms < EXCLUDED.ts_ms
RETURNING provider, symbol, price, ts_ms

-- name: price_latest_upsert
-- Newest tick per (provider, symbol) of a batch; the WHERE keeps a newer stored row. Rows arrive
-- sorted by (provider, symbol), so concurrent batches lock rows in one order (no deadlocks).
INSERT INTO price_latest AS l (provider, symbol, price, ts_ms, raw)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::int8[], $5::jsonb[])
{{price_latest_conflict}};

-- name: price_ticks_ingest
-- IngestPriceTicks as one statement, so that a batch's ticks requests ride in its pipeline (COPY
-- cannot) and share its one transaction with the other writes: the ticks ($1–$6), the newest tick
-- per (provider, symbol) as price_latest_upsert ($7–$11, sorted), and the idempotency record ($12 key,
-- $13 method, $14 digest) with the reply, IngestPriceTicksResponse as FieldWriter encodes it
-- (1 stored = $15, 2 latest_updated); a recorded key fails the statement (the batch then goes step by
-- step, which replays it). Returns the latest prices that moved forward.
WITH ticks AS (
    INSERT INTO price_ticks (provider, symbol, price, ts_ms, volume, raw)
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::int8[], $5::float8[], $6::jsonb[])
), latest AS (
    INSERT INTO price_latest AS l (provider, symbol, price, ts_ms, raw)
    SELECT * FROM unnest($7::text[], $8::text[], $9::float8[], $10::int8[], $11::jsonb[])
    {{price_latest_conflict}}
), idem AS (
    INSERT INTO engine_store_idempotency (key, method, digest, response)
    SELECT $12, $13::smallint, $14,
           '\x08'::bytea || engine_store_varint($15::int8) || '\x10'::bytea || engine_store_varint(count(*)) FROM latest
)
SELECT * FROM latest;

-- name: market_asset_upsert
INSERT INTO market_assets AS a (provider, symbol, name, sz_decimals, max_leverage, only_isolated, margin_table_id, is_delisted)
VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8::bool, false))
ON CONFLICT (provider, symbol) DO UPDATE SET
    name = COALESCE(EXCLUDED.name, a.name), sz_decimals = COALESCE(EXCLUDED.sz_decimals, a.sz_decimals),
    max_leverage = COALESCE(EXCLUDED.max_leverage, a.max_leverage),
    only_isolated = COALESCE(EXCLUDED.only_isolated, a.only_isolated),
    margin_table_id = COALESCE(EXCLUDED.margin_table_id, a.margin_table_id),
    is_delisted = COALESCE($8::bool, a.is_delisted), updated_at = now()
RETURNING provider, symbol, name, sz_decimals, max_leverage, only_isolated, margin_table_id, is_delisted,
          (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms;

-- name: market_ctx_upsert
INSERT INTO market_asset_ctx AS c (provider, symbol, funding, open_interest, oracle_px, mark_px, mid_px, impact_pxs,
                                   prev_day_px, day_ntl_vlm, day_base_vlm)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11)
ON CONFLICT (provider, symbol) DO UPDATE SET
    funding = COALESCE(EXCLUDED.funding, c.funding), open_interest = COALESCE(EXCLUDED.open_interest, c.open_interest),
    oracle_px = COALESCE(EXCLUDED.oracle_px, c.oracle_px), mark_px = COALESCE(EXCLUDED.mark_px, c.mark_px),
    mid_px = COALESCE(EXCLUDED.mid_px, c.mid_px), impact_pxs = COALESCE(EXCLUDED.impact_pxs, c.impact_pxs),
    prev_day_px = COALESCE(EXCLUDED.prev_day_px, c.prev_day_px), day_ntl_vlm = COALESCE(EXCLUDED.day_ntl_vlm, c.day_ntl_vlm),
    day_base_vlm = COALESCE(EXCLUDED.day_base_vlm, c.day_base_vlm), updated_at = now()
RETURNING provider, symbol, funding, open_interest, oracle_px, mark_px, mid_px, impact_pxs::text AS impact_pxs,
          prev_day_px, day_ntl_vlm, day_base_vlm, (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms;

-- name: ticks_retention_try_lock
SELECT pg_try_advisory_lock($1::int8) AS locked;

-- name: ticks_retention_unlock
SELECT pg_advisory_unlock($1::int8);

-- name: ticks_retention_symbols
-- The distinct symbols of price_ticks, as a loose index scan over nof0's (symbol, ts_ms DESC) index:
-- one probe per symbol, whoever wrote the ticks.
WITH RECURSIVE s(symbol) AS (
    (SELECT symbol FROM price_ticks ORDER BY symbol LIMIT 1)
    UNION ALL
    SELECT (SELECT symbol FROM price_ticks WHERE symbol > s.symbol ORDER BY symbol LIMIT 1) FROM s WHERE s.symbol IS NOT NULL)
SELECT symbol FROM s WHERE symbol IS NOT NULL;

-- name: ticks_retention_delete
-- Up to $3 of a symbol's ticks older than $2 (ms).
DELETE FROM price_ticks WHERE id IN (
    SELECT id FROM price_ticks WHERE symbol = $1 AND ts_ms < $2::int8 LIMIT $3::int);
