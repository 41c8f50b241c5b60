-- Positions: one row per lifecycle (model, symbol, entry); at most one open per model and symbol.

-- fragment: position_columns
id, symbol, side, quantity, entry_price, leverage, confidence, risk_usd, exchange_provider,
(extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms, cache_version

-- fragment: position_update_assignments
exchange_provider = COALESCE($3, exchange_provider),
side = COALESCE($4, side),
quantity = COALESCE($5::float8, quantity),
entry_price = COALESCE($6::float8, entry_price),
entry_time_ms = COALESCE($7::int8, entry_time_ms),
leverage = COALESCE($8::float8, leverage),
confidence = COALESCE($9::float8, confidence),
risk_usd = COALESCE($10::float8, risk_usd),
margin = COALESCE($11::float8, margin),
entry_oid = COALESCE($12::int8, entry_oid),
tp_oid = COALESCE($13::int8, tp_oid),
sl_oid = COALESCE($14::int8, sl_oid),
wait_for_fill = COALESCE($15::bool, wait_for_fill),
exit_plan = COALESCE($16::jsonb, exit_plan),
index_col = COALESCE($17::jsonb, index_col),
current_price = COALESCE($18::float8, current_price),
unrealized_pnl = COALESCE($19::float8, unrealized_pnl),
liquidation_price = COALESCE($20::float8, liquidation_price),
commission = COALESCE($21::float8, commission),
slippage = COALESCE($22::float8, slippage),
updated_at = now(),
cache_version = nextval('engine_store_cache_version')

-- fragment: position_save_tail
res AS (SELECT *, false AS opened FROM upd UNION ALL SELECT *, true FROM ins),
idem AS (
    INSERT INTO engine_store_idempotency (key, method, digest, response)
    SELECT $23, $25::smallint, $24,
           '\x0a'::bytea || engine_store_varint(octet_length(convert_to(id, 'UTF8'))) || convert_to(id, 'UTF8')
           || '\x10'::bytea || CASE WHEN opened THEN '\x01'::bytea ELSE '\x00'::bytea END
           || '\x18'::bytea || engine_store_varint(updated_ms * 2)
    FROM res WHERE $23::text IS NOT NULL
),
ob AS (INSERT INTO engine_store_outbox (kind, subject, ref) SELECT 'position', $1, $2 FROM res RETURNING id)
SELECT res.*, (SELECT id FROM ob) AS outbox_id FROM res

-- name: position_save
-- SavePosition, both paths: update the open row, or open one ($26 the new id) when none is, and record
-- the outbox row. With a key ($23, digest $24, method $25) it also records the reply,
-- SavePositionResponse encoded as FieldWriter does (1 position_id, 2 opened, 3 updated_at_ms ZigZag),
-- and fails when the key exists: a pipelined batch then falls back to the step-by-step path. A
-- concurrent open leaves both CTEs empty: nothing written, the caller runs position_save_existing.
WITH upd AS (
    UPDATE positions SET {{position_update_assignments}}
    WHERE model_id = $1 AND symbol = $2 AND status = 'open'
    RETURNING {{position_columns}}
), ins AS (
    INSERT INTO positions (
        model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
        confidence, risk_usd, margin, entry_oid, tp_oid, sl_oid, wait_for_fill, exit_plan, index_col,
        current_price, unrealized_pnl, liquidation_price, commission, slippage, id, status)
    SELECT $1, $2, $3, $4, $5::float8, $6::float8, $7::int8, $8::float8, $9::float8, $10::float8, $11::float8,
           $12::int8, $13::int8, $14::int8, COALESCE($15::bool, false), $16::jsonb, $17::jsonb, $18::float8,
           $19::float8, $20::float8, $21::float8, $22::float8, $26, 'open'
    WHERE NOT EXISTS (SELECT 1 FROM upd)
    ON CONFLICT (model_id, symbol) WHERE status = 'open' DO NOTHING
    RETURNING {{position_columns}}
),
{{position_save_tail}};

-- name: position_save_existing
-- position_save for a request that cannot open a position (no $26): updates the open row only.
WITH upd AS (
    UPDATE positions SET {{position_update_assignments}}
    WHERE model_id = $1 AND symbol = $2 AND status = 'open'
    RETURNING {{position_columns}}
), ins AS (SELECT * FROM upd WHERE false),
{{position_save_tail}};

-- name: positions_open_of_model
SELECT {{position_columns}} FROM positions WHERE model_id = $1 AND status = 'open' ORDER BY symbol;

-- name: position_slots
-- The newest row of each of a model's symbols: open ones are the hash, closed ones its tombstones.
SELECT DISTINCT ON (symbol) {{position_columns}}, status = 'open' AS is_open
FROM positions WHERE model_id = $1 ORDER BY symbol, cache_version DESC, (status = 'open') DESC;

-- name: position_lock_open
SELECT id, side, quantity, entry_price, entry_time_ms, leverage, confidence, commission, exchange_provider,
       entry_oid, exit_plan::text AS exit_plan
FROM positions WHERE model_id = $1 AND symbol = $2 AND status = 'open' FOR UPDATE;

-- name: position_close_full
UPDATE positions SET status = 'closed', current_price = $2, unrealized_pnl = 0,
    closed_pnl = COALESCE(closed_pnl, 0) + $3, updated_at = now(), cache_version = nextval('engine_store_cache_version')
WHERE id = $1
RETURNING cache_version;

-- name: position_close_partial
UPDATE positions SET quantity = quantity - $2, commission = commission - $3,
    closed_pnl = COALESCE(closed_pnl, 0) + $4, current_price = $5, updated_at = now(),
    cache_version = nextval('engine_store_cache_version')
WHERE id = $1
RETURNING {{position_columns}};

-- name: position_lock_for_mark
-- A snapshot's mark, phase one: locks the open row (no row when none is open); the mark is written
-- in phase two (position_mark), so the reads of a two-phase batch write nothing.
SELECT 1 AS locked FROM positions WHERE model_id = $1 AND symbol = $2 AND status = 'open' FOR UPDATE;

-- name: position_mark
-- A snapshot's mark of an open position.
UPDATE positions SET current_price = $3, unrealized_pnl = COALESCE($4::float8, unrealized_pnl),
    liquidation_price = COALESCE($5::float8, liquidation_price), updated_at = now(),
    cache_version = nextval('engine_store_cache_version')
WHERE model_id = $1 AND symbol = $2 AND status = 'open'
RETURNING {{position_columns}};

-- name: position_open_batch
-- SavePosition for a batch of requests that each carry every field an open needs ($1…$22 arrays, one
-- element per request, as position_save's parameters; $23 the new ids): one multi-row upsert instead
-- of one statement per request (issue 15: executor setup per statement was half of Postgres's time).
-- Rows go in request order, each inserting or locking its slot in turn: the batch keeps the ascending
-- lock order its requests came sorted in (LockOrder). A model and symbol appears at most once per
-- call. Returns one row per request: the row (its model_id and symbol name the request, as no slot
-- repeats: joining the input back for its `ord` cost ~4 µs a row), `opened` and the call's one outbox
-- row id (the cache writer takes the call's requests as one write: PostgresPool.handOff). The
-- replies and idempotency records are written after it (idem_record_batch), from Swift.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::int8[],
                         $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::int8[], $13::int8[], $14::int8[],
                         $15::bool[], $16::jsonb[], $17::jsonb[], $18::float8[], $19::float8[], $20::float8[],
                         $21::float8[], $22::float8[], $23::text[])
        WITH ORDINALITY AS r(model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
                             confidence, risk_usd, margin, entry_oid, tp_oid, sl_oid, wait_for_fill, exit_plan, index_col,
                             current_price, unrealized_pnl, liquidation_price, commission, slippage, new_id, ord)
), res AS (
    INSERT INTO positions AS p (
        id, model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
        confidence, risk_usd, margin, entry_oid, tp_oid, sl_oid, wait_for_fill, exit_plan, index_col,
        current_price, unrealized_pnl, liquidation_price, commission, slippage, status)
    SELECT new_id, model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
           confidence, risk_usd, margin, entry_oid, tp_oid, sl_oid, COALESCE(wait_for_fill, false), exit_plan, index_col,
           current_price, unrealized_pnl, liquidation_price, commission, slippage, 'open'
    FROM input ORDER BY ord
    ON CONFLICT (model_id, symbol) WHERE status = 'open' DO UPDATE SET
        exchange_provider = EXCLUDED.exchange_provider,
        side = EXCLUDED.side,
        quantity = EXCLUDED.quantity,
        entry_price = EXCLUDED.entry_price,
        entry_time_ms = EXCLUDED.entry_time_ms,
        leverage = COALESCE(EXCLUDED.leverage, p.leverage),
        confidence = COALESCE(EXCLUDED.confidence, p.confidence),
        risk_usd = COALESCE(EXCLUDED.risk_usd, p.risk_usd),
        margin = COALESCE(EXCLUDED.margin, p.margin),
        entry_oid = COALESCE(EXCLUDED.entry_oid, p.entry_oid),
        tp_oid = COALESCE(EXCLUDED.tp_oid, p.tp_oid),
        sl_oid = COALESCE(EXCLUDED.sl_oid, p.sl_oid),
        -- EXCLUDED holds the inserted default (false), not what was sent: read that from the input, by
        -- the request's new id (an array look-up: a correlated scan of `input` cost ~3 µs a row).
        wait_for_fill = COALESCE(($15::bool[])[array_position($23::text[], EXCLUDED.id)], p.wait_for_fill),
        exit_plan = COALESCE(EXCLUDED.exit_plan, p.exit_plan),
        index_col = COALESCE(EXCLUDED.index_col, p.index_col),
        current_price = COALESCE(EXCLUDED.current_price, p.current_price),
        unrealized_pnl = COALESCE(EXCLUDED.unrealized_pnl, p.unrealized_pnl),
        liquidation_price = COALESCE(EXCLUDED.liquidation_price, p.liquidation_price),
        commission = COALESCE(EXCLUDED.commission, p.commission),
        slippage = COALESCE(EXCLUDED.slippage, p.slippage),
        updated_at = now(),
        cache_version = nextval('engine_store_cache_version')
    RETURNING p.model_id, {{position_columns}}, p.xmax = 0 AS opened
), ob AS (
    -- One outbox row for the whole call (kind `intents`: a `position` line per model, as
    -- OutboxIntent.intents writes them), not one per request (issue 15: Postgres's CPU per update
    -- -6.5 %, median of 10 A/B rounds). None when no row was written (HAVING: an aggregate of no
    -- rows is still one row).
    INSERT INTO engine_store_outbox (kind, subject, ref)
    SELECT 'intents', '', string_agg(DISTINCT 'position' || E'\t' || model_id || E'\t', E'\n') FROM res HAVING count(*) > 0
    RETURNING id
)
SELECT res.*, (SELECT id FROM ob) AS outbox_id FROM res;
