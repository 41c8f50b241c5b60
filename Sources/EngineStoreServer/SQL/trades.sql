-- Closed trades (one row per close, full or partial) and exchange trade events.

-- fragment: trade_columns
model_id, symbol, side, quantity, entry_price, exit_price, realized_net_pnl, confidence,
exit_ts_ms, exchange_provider, entry_ts_ms, leverage, id

-- fragment: trade_insert_columns
id, model_id, exchange_provider, symbol, side, trade_type, trade_id, quantity, leverage, confidence,
entry_price, entry_ts_ms, entry_human_time, entry_sz, entry_oid, entry_commission_dollars,
exit_price, exit_ts_ms, exit_human_time, exit_sz, exit_tid, exit_oid, exit_crossed, exit_liquidation,
exit_commission_dollars, exit_closed_pnl, exit_plan, realized_gross_pnl, realized_net_pnl,
total_commission_dollars

-- name: trade_insert
INSERT INTO trades ({{trade_insert_columns}})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
        $21, $22, $23, $24::jsonb, $25, $26, $27::jsonb, $28, $29, $30);

-- name: trade_insert_rows
-- trade_insert for several closes of a two-phase batch: its parameters as arrays, one element per
-- row (see PostgresWorker.rowsForms).
INSERT INTO trades ({{trade_insert_columns}})
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[],
                     $9::float8[], $10::float8[], $11::float8[], $12::int8[], $13::text[], $14::float8[], $15::int8[],
                     $16::float8[], $17::float8[], $18::int8[], $19::text[], $20::float8[], $21::int8[], $22::int8[],
                     $23::bool[], $24::jsonb[], $25::float8[], $26::float8[], $27::jsonb[], $28::float8[], $29::float8[],
                     $30::float8[]);

-- name: trades_recent_of_model
-- A model's newest closed trades: newest exit first, ties by id in byte order (the order the cache's
-- merge script keeps; see CacheScripts.tradesMerge).
SELECT {{trade_columns}}
FROM trades WHERE model_id = $1 AND exit_ts_ms IS NOT NULL
ORDER BY exit_ts_ms DESC, id COLLATE "C" DESC LIMIT $2;

-- name: trade_by_id
SELECT {{trade_columns}} FROM trades WHERE id = $1;

-- name: trades_existing
-- Which of the given ids are trades rows.
SELECT id FROM trades WHERE id = ANY($1::text[]);

-- name: trade_event_insert
INSERT INTO engine_store_trade_events (trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
ON CONFLICT (trade_id) DO NOTHING RETURNING 1;

-- name: trade_event_by_id
SELECT trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload::text AS payload
FROM engine_store_trade_events WHERE trade_id = $1;

-- name: trade_event_insert_batch
-- trade_event_insert for a batch ($1…$10 arrays, one element per request, in its parameters' order),
-- with each new event's outbox row and each request's idempotency record: key $11, method $12, digest
-- $13 and the reply, built in Swift both ways ($14 for a new event, $15 for a duplicate, hex), so the
-- batch commits in its first round trip. A key recorded already fails the statement (the batch then
-- runs step by step, which replays it). One row per request: `ord` (1-based) and `outbox_id`, NULL
-- when the trade id was already recorded (a duplicate). A trade id appears at most once per call.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[],
                         $8::float8[], $9::int8[], $10::jsonb[], $11::text[], $12::smallint[], $13::text[],
                         $14::text[], $15::text[])
        WITH ORDINALITY AS r(trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload,
                             key, method, digest, reply_new, reply_duplicate, ord)
), ins AS (
    INSERT INTO engine_store_trade_events (trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload)
    SELECT trade_id, model_id, symbol, kind, side, price, size, fee, ts_ms, payload FROM input ORDER BY ord
    ON CONFLICT (trade_id) DO NOTHING
    RETURNING trade_id
), ob AS (
    INSERT INTO engine_store_outbox (kind, subject, ref) SELECT 'trade_event', trade_id, '' FROM ins
    RETURNING id, subject
), res AS (
    SELECT input.ord, ob.id AS outbox_id, input.key, input.method, input.digest,
           CASE WHEN ob.id IS NULL THEN input.reply_duplicate ELSE input.reply_new END AS reply
    FROM input LEFT JOIN ob ON ob.subject = input.trade_id
), idem AS (
    INSERT INTO engine_store_idempotency (key, method, digest, response)
    SELECT key, method, digest, decode(reply, 'hex') FROM res ORDER BY ord
)
SELECT ord, outbox_id FROM res;
