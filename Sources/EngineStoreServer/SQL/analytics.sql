-- Model analytics and the leaderboard built from them.

-- name: analytics_upsert
-- A payload older than the stored one never overwrites it (no row returned). Returns the payload as
-- Postgres prints the JSONB, so the direct path caches the same bytes a rebuild does.
INSERT INTO model_analytics (model_id, payload, server_time_ms, metadata)
VALUES ($1, $2::jsonb, $3, COALESCE($4::jsonb, '{}'))
ON CONFLICT (model_id) DO UPDATE SET payload = EXCLUDED.payload, server_time_ms = EXCLUDED.server_time_ms,
    metadata = COALESCE($4::jsonb, model_analytics.metadata), updated_at = now(),
    cache_version = nextval('engine_store_cache_version')
WHERE model_analytics.server_time_ms <= EXCLUDED.server_time_ms
RETURNING payload::text AS payload, cache_version;

-- name: analytics_of_model
-- The payload as Postgres prints the JSONB: the analytics document.
SELECT payload::text AS payload, cache_version FROM model_analytics WHERE model_id = $1;

-- fragment: leaderboard_rendered
SELECT COALESCE(json_agg(x ORDER BY x.rank), '[]')::text FROM (
    SELECT row_number() OVER (ORDER BY CASE WHEN jsonb_typeof(payload->'total_pnl_pct') = 'number'
                                        THEN (payload->>'total_pnl_pct')::float8 END DESC NULLS LAST, model_id COLLATE "C") AS rank,
           model_id, payload->'total_pnl_pct' AS total_pnl_pct, payload->'total_pnl_usd' AS total_pnl_usd,
           payload->'sharpe_ratio' AS sharpe_ratio, payload->'win_rate' AS win_rate,
           payload->'total_trades' AS total_trades, payload->'max_drawdown_pct' AS max_drawdown_pct, server_time_ms
    FROM model_analytics ORDER BY rank LIMIT 100) x

-- name: leaderboard_state
-- The leaderboard as of one snapshot: members by score; on every row the version (the sum of every
-- row's cache_version: rows only gain versions, so a later snapshot has a larger sum exactly when
-- something changed) and the rendered cache, a JSON array of {rank, model_id, total_pnl_pct,
-- total_pnl_usd, sharpe_ratio, win_rate, total_trades, max_drawdown_pct, server_time_ms}, top 100.
-- Rendered by Postgres: it is built only here (the direct path leaves it to the relay).
SELECT model_id, CASE WHEN jsonb_typeof(payload->'total_pnl_pct') = 'number' THEN (payload->>'total_pnl_pct')::float8 END AS score,
       (SELECT lpad(COALESCE(sum(cache_version), 0)::text, 20, '0') FROM model_analytics) AS version,
       ({{leaderboard_rendered}}) AS rendered
FROM model_analytics ORDER BY score DESC NULLS LAST, model_id COLLATE "C" LIMIT 1000;
