-- close_position_64 baseline: a plain per-request ClosePosition writer (run with -D tag=… -D stock=…
-- -D n=0 -D q=0 -D e=0; pgbench keeps a client's variables from one script run to the next).
-- One script run = one close, like one close-position operation of engine-store-load, which first
-- opens a position when it has none open (quantity 1-4) and closes half of it when the quantity is
-- above 1 and a coin says so, else all of it (so about 1.5 closes per position).
--   * open (when nothing is open and the client's pre-opened stock of `stock` positions is used up):
--     its own transaction, the plain SavePosition of save_position_update.sql (idempotency row +
--     positions upsert);
--   * close: one transaction, the idempotency row (method 17, a reply of the service's size) and one
--     statement that updates the open row (closed, or reduced) and inserts the trades row from it.
-- tag=1, stock=0: the close-position line itself (opens included, as in the service's operation).
-- tag=2, stock=K: K positions per client are opened before the run (not timed), so the run measures
-- closes alone: the close part of the mix, where positions are opened by save-position.
-- Left out, as the service's own machinery: the outbox rows, cache_version (0 on insert, not bumped),
-- the SELECT … FOR UPDATE before the writes (the statement computes the PnL from the row itself).
-- Keys: model pgb-m1..1000, symbol PGB-C<tag>-<client>-<n>, apart from the service's keys.
\if :q = 0
\set n :n + 1
\set q 1 + :n % 4
\if :n > :stock
BEGIN;
INSERT INTO engine_store_idempotency (key, method, digest, response)
VALUES ('pgb-o' || :tag || '-' || :client_id || '-' || :n, 16, '0123456789abcdef',
        convert_to('pgb-m' || (:n % 1000 + 1) || '|PGB-C' || :tag || '-' || :client_id || '-' || :n || '|1764201600000|00000000', 'UTF8')
        || '\x100118808080808080'::bytea);
INSERT INTO positions AS p (id, model_id, symbol, exchange_provider, side, quantity, entry_price, entry_time_ms, leverage,
                            confidence, commission, status, cache_version)
VALUES ('pgb-m' || (:n % 1000 + 1) || '|PGB-C' || :tag || '-' || :client_id || '-' || :n || '|1764201600000|00000000',
        'pgb-m' || (:n % 1000 + 1), 'PGB-C' || :tag || '-' || :client_id || '-' || :n, 'load',
        CASE WHEN :n % 2 = 0 THEN 'long' ELSE 'short' END, :q, 100, 1764201600000, 5, 0.5, 0.05, 'open', 0)
ON CONFLICT (model_id, symbol) WHERE status = 'open'
DO UPDATE SET current_price = EXCLUDED.current_price, updated_at = now()
RETURNING p.id, p.updated_at;
COMMIT;
\endif
\endif
\set e :e + 1
\set cents random(9000, 11000)
\set coin random(0, 1)
BEGIN;
INSERT INTO engine_store_idempotency (key, method, digest, response)
VALUES ('pgb-c' || :tag || '-' || :client_id || '-' || :e, 17, '0123456789abcdef',
        convert_to('pgb-m' || (:n % 1000 + 1) || '|PGB-C' || :tag || '-' || :client_id || '-' || :n || '|' || (1764201600000 + :e) || '|00000000', 'UTF8')
        || convert_to('pgb-m' || (:n % 1000 + 1) || '|PGB-C' || :tag || '-' || :client_id || '-' || :n || '|1764201600000|00000000', 'UTF8')
        || '\x180121000000000000f03f290000000000000000310000000000000000390000000000000000410000000000000000'::bytea);
\if :q > 1 and :coin = 1
\set size :q / 2.0
\set q :q - :size
WITH p AS (
    UPDATE positions SET quantity = quantity - :size::float8,
        commission = commission - commission * :size::float8 / quantity,
        closed_pnl = COALESCE(closed_pnl, 0) + (:cents / 100.0 - entry_price) * :size::float8 * (CASE WHEN side = 'short' THEN -1 ELSE 1 END)
                     - commission * :size::float8 / quantity - 0.05,
        current_price = :cents / 100.0, updated_at = now()
    WHERE model_id = 'pgb-m' || (:n % 1000 + 1) AND symbol = 'PGB-C' || :tag || '-' || :client_id || '-' || :n AND status = 'open'
    RETURNING model_id, symbol, exchange_provider, side, leverage, confidence, entry_price, entry_time_ms, entry_oid, exit_plan,
        (:cents / 100.0 - entry_price) * :size::float8 * (CASE WHEN side = 'short' THEN -1 ELSE 1 END) AS gross,
        commission * :size::float8 / quantity AS share)
INSERT INTO trades (id, model_id, exchange_provider, symbol, side, trade_type, quantity, leverage, confidence, entry_price,
    entry_ts_ms, entry_human_time, entry_sz, entry_oid, entry_commission_dollars, exit_price, exit_ts_ms, exit_human_time, exit_sz,
    exit_crossed, exit_commission_dollars, exit_closed_pnl, exit_plan, realized_gross_pnl, realized_net_pnl, total_commission_dollars)
SELECT model_id || '|' || symbol || '|' || (1764201600000 + :e) || '|00000000', model_id, exchange_provider, symbol, side,
    CASE WHEN side = 'short' THEN 'close_short' ELSE 'close_long' END, :size::float8, leverage, confidence, entry_price,
    entry_time_ms, '2025-11-27T00:00:00.000Z', :size::float8, entry_oid, share, :cents / 100.0, 1764201600000 + :e,
    '2025-11-27T00:00:00.000Z', :size::float8, false, 0.05, gross, exit_plan, gross, gross - share - 0.05, share + 0.05
FROM p;
\else
\set size :q
\set q 0
WITH p AS (
    UPDATE positions SET status = 'closed', current_price = :cents / 100.0, unrealized_pnl = 0,
        closed_pnl = COALESCE(closed_pnl, 0) + (:cents / 100.0 - entry_price) * quantity * (CASE WHEN side = 'short' THEN -1 ELSE 1 END)
                     - commission - 0.05,
        updated_at = now()
    WHERE model_id = 'pgb-m' || (:n % 1000 + 1) AND symbol = 'PGB-C' || :tag || '-' || :client_id || '-' || :n AND status = 'open'
    RETURNING model_id, symbol, exchange_provider, side, leverage, confidence, entry_price, entry_time_ms, entry_oid, exit_plan,
        quantity, (:cents / 100.0 - entry_price) * quantity * (CASE WHEN side = 'short' THEN -1 ELSE 1 END) AS gross,
        commission AS share)
INSERT INTO trades (id, model_id, exchange_provider, symbol, side, trade_type, quantity, leverage, confidence, entry_price,
    entry_ts_ms, entry_human_time, entry_sz, entry_oid, entry_commission_dollars, exit_price, exit_ts_ms, exit_human_time, exit_sz,
    exit_crossed, exit_commission_dollars, exit_closed_pnl, exit_plan, realized_gross_pnl, realized_net_pnl, total_commission_dollars)
SELECT model_id || '|' || symbol || '|' || (1764201600000 + :e) || '|00000000', model_id, exchange_provider, symbol, side,
    CASE WHEN side = 'short' THEN 'close_short' ELSE 'close_long' END, quantity, leverage, confidence, entry_price,
    entry_time_ms, '2025-11-27T00:00:00.000Z', quantity, entry_oid, share, :cents / 100.0, 1764201600000 + :e,
    '2025-11-27T00:00:00.000Z', quantity, false, 0.05, gross, exit_plan, gross, gross - share - 0.05, share + 0.05
FROM p;
\endif
COMMIT;
