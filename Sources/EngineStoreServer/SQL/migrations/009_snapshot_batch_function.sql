-- migration: snapshot batches in one round trip
-- SaveSnapshot for a batch of requests of one snapshot each and no marks (issue 15), called by
-- snapshot_store_batch: the arrays hold one element per request, in the batch's lock order.
-- A function, so that its two statements see different snapshots (VOLATILE, READ COMMITTED): the
-- first takes every trader's throttle lock, the same key as snapshot_lock_trader_64, in the arrays'
-- order; the second starts after it holds them, so it reads what the locks' previous holders
-- committed. It decides as SaveSnapshotBody.plan does, stores what the throttle lets through and
-- records each key with its reply: p_reply (built in Swift) for a snapshot stored as its trader's
-- newest, the usual case; else engine_store_snapshot_reply, from the bytes Swift gives around the
-- two values only the database knows. One row per request: `ord` (1-based), `stored`, `last_stored_ms`.
-- A key recorded already fails the statement (the batch then runs step by step, which replays it).
-- A trader appears at most once per call.
CREATE OR REPLACE FUNCTION engine_store_snapshot_batch(
    p_model text[], p_ts int8[], p_equity float8[], p_realized float8[], p_unrealized float8[], p_cum float8[],
    p_sharpe float8[], p_hourly int4[], p_minute int4[], p_metadata jsonb[], p_min_interval int8[],
    p_head text[], p_tail text[], p_key text[], p_method smallint[], p_digest text[], p_reply text[])
RETURNS TABLE (ord bigint, stored boolean, last_stored_ms bigint)
-- The generic plan always: for short arrays (a lone request) the plan cache found custom plans
-- cheaper and planned this query again on every call (a lone snapshot took 1.3 ms instead of 0.5).
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    -- A function scan yields its rows in order, and each row's call takes its lock then.
    PERFORM pg_advisory_xact_lock(hashtextextended('engine_store.snapshot:' || m, 0))
    FROM unnest(p_model) AS m;
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_model, p_ts, p_equity, p_realized, p_unrealized, p_cum, p_sharpe, p_hourly, p_minute,
                             p_metadata, p_min_interval, p_head, p_tail, p_key, p_method, p_digest, p_reply)
            WITH ORDINALITY AS r(model_id, ts_ms, dollar_equity, realized_pnl, total_unrealized_pnl, cum_pnl_pct,
                                 sharpe_ratio, hourly, minute, metadata, min_interval, head, tail, key, method, digest,
                                 reply, ord)
    ), newest AS (
        -- A lateral join, not a scalar subquery: each use of a subquery's value would run it again.
        SELECT i.*, l.last_ms
        FROM input i LEFT JOIN LATERAL (
            SELECT a.ts_ms AS last_ms FROM account_equity_snapshots a WHERE a.model_id = i.model_id
            ORDER BY a.ts_ms DESC LIMIT 1
        ) l ON true
    ), decided AS (
        -- The throttle: a stored snapshot of another time less than the interval away.
        SELECT n.*, NOT (n.last_ms IS NOT NULL AND n.min_interval > 0 AND n.ts_ms <> n.last_ms
                         AND abs(n.ts_ms - n.last_ms) < n.min_interval) AS keep
        FROM newest n
    ), answered AS (
        SELECT d.*, CASE WHEN d.keep THEN greatest(d.last_ms, d.ts_ms) ELSE d.last_ms END AS last_stored
        FROM decided d
    ), ins AS (
        INSERT INTO account_equity_snapshots AS a (model_id, ts_ms, dollar_equity, realized_pnl, total_unrealized_pnl,
            cum_pnl_pct, sharpe_ratio, since_inception_hourly_marker, since_inception_minute_marker, metadata)
        SELECT s.model_id, s.ts_ms, s.dollar_equity, COALESCE(s.realized_pnl, 0), COALESCE(s.total_unrealized_pnl, 0),
               s.cum_pnl_pct, s.sharpe_ratio, s.hourly, s.minute, COALESCE(s.metadata, '{}')
        FROM answered s WHERE s.keep ORDER BY s.ord
        ON CONFLICT (model_id, ts_ms) DO UPDATE SET
            dollar_equity = EXCLUDED.dollar_equity, realized_pnl = EXCLUDED.realized_pnl,
            total_unrealized_pnl = EXCLUDED.total_unrealized_pnl, cum_pnl_pct = EXCLUDED.cum_pnl_pct,
            sharpe_ratio = EXCLUDED.sharpe_ratio, since_inception_hourly_marker = EXCLUDED.since_inception_hourly_marker,
            since_inception_minute_marker = EXCLUDED.since_inception_minute_marker, metadata = EXCLUDED.metadata
    ), idem AS (
        INSERT INTO engine_store_idempotency (key, method, digest, response)
        SELECT s.key, s.method, s.digest,
               CASE WHEN s.keep AND s.last_stored = s.ts_ms THEN decode(s.reply, 'hex')
                    ELSE engine_store_snapshot_reply(decode(s.head, 'hex'), s.keep, s.last_stored, decode(s.tail, 'hex'))
               END
        FROM answered s ORDER BY s.ord
    )
    SELECT s.ord, s.keep, s.last_stored FROM answered s ORDER BY s.ord;
END
$fn$;

-- SaveSnapshotResponse with one result, as FieldWriter encodes it: field 1 (the result, length-delimited)
-- holding `head` (model_id, then field 2's tag), stored, field 3 (last_stored_ms, ZigZag varint), then
-- `tail` (marks_applied). PipelineTests checks it byte for byte against Swift's encoding.
CREATE OR REPLACE FUNCTION engine_store_snapshot_reply(head bytea, stored boolean, last_ms bigint, tail bytea)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
-- plpgsql, not sql: a sql function that cannot be inlined is parsed and planned again for every
-- statement that calls it (measured at ~40 µs a call).
DECLARE
    body bytea := head || CASE WHEN stored THEN '\x01'::bytea ELSE '\x00'::bytea END || '\x18'::bytea
                  || engine_store_varint(CASE WHEN last_ms >= 0 THEN last_ms * 2 ELSE -(last_ms * 2) - 1 END) || tail;
BEGIN
    RETURN '\x0a'::bytea || engine_store_varint(octet_length(body)) || body;
END
$fn$;
