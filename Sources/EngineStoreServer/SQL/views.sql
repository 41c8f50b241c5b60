-- nof0's materialized views (ViewRefresher).

-- name: views_try_lock
-- Nof0ViewsTests looks for this exact text in pg_stat_activity.
SELECT pg_try_advisory_lock($1);

-- name: views_unlock
SELECT pg_advisory_unlock($1);

-- name: views_plan
-- The views that exist, in the given order, and whether CONCURRENTLY works for each: it needs a
-- populated view and a valid unique index over plain columns without a WHERE clause.
SELECT v.matviewname AS name, v.ispopulated AND EXISTS (
    SELECT 1 FROM pg_index i
    WHERE i.indrelid = format('%I.%I', v.schemaname, v.matviewname)::regclass
      AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL) AS concurrently
FROM pg_matviews v
WHERE v.schemaname = current_schema() AND v.matviewname = ANY($1::text[])
ORDER BY array_position($1::text[], v.matviewname::text);
