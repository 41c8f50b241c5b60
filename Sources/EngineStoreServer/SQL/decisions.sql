-- Decision cycles.

-- fragment: decision_version
lpad(((extract(epoch FROM executed_at) * 1000000)::bigint)::text, 17, '0') || lpad(id::text, 19, '0')

-- name: decision_insert
INSERT INTO decision_cycles (model_id, cycle_number, prompt_digest, cot_trace, decisions, success, error_message, executed_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, COALESCE(to_timestamp($8::float8 / 1000), now()))
RETURNING id, (extract(epoch FROM executed_at) * 1000)::bigint AS executed_ms, {{decision_version}} AS version;

-- name: decision_last
-- A model's last cycle: the order of "last" (executed_at, then id) is also its version, as a
-- fixed-width string (see CacheVersion).
SELECT success, (extract(epoch FROM executed_at) * 1000)::bigint AS executed_ms,
       upper(decisions->0->>'symbol') AS symbol, decisions->0->>'action' AS action,
       CASE WHEN jsonb_typeof(decisions->0->'confidence') = 'number' THEN (decisions->0->>'confidence')::float8 END
           AS confidence,
       error_message, {{decision_version}} AS version
FROM decision_cycles WHERE model_id = $1 ORDER BY executed_at DESC, id DESC LIMIT 1;
