-- Trader state: one row per trader.

-- fragment: trader_state_columns
trader_id, exchange_provider, market_provider, allocation_pct, cooldown::text AS cooldown,
risk_guards::text AS risk_guards, (extract(epoch FROM last_decision_at) * 1000)::bigint AS last_decision_ms,
(extract(epoch FROM pause_until) * 1000)::bigint AS pause_until_ms,
(extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms, cache_version

-- name: trader_state_select
SELECT {{trader_state_columns}} FROM trader_state WHERE trader_id = $1;

-- name: trader_state_update
-- Changes only the fields sent (non-NULL).
UPDATE trader_state SET
    exchange_provider = COALESCE($2, exchange_provider),
    market_provider = COALESCE($3, market_provider),
    allocation_pct = COALESCE($4::float8, allocation_pct),
    cooldown = COALESCE($5::jsonb, cooldown),
    risk_guards = COALESCE($6::jsonb, risk_guards),
    last_decision_at = COALESCE(to_timestamp($7::float8 / 1000), last_decision_at),
    pause_until = COALESCE(to_timestamp($8::float8 / 1000), pause_until),
    updated_at = now(),
    cache_version = nextval('engine_store_cache_version')
WHERE trader_id = $1
RETURNING {{trader_state_columns}};

-- name: trader_state_insert
INSERT INTO trader_state (trader_id, exchange_provider, market_provider, allocation_pct, cooldown, risk_guards,
                          last_decision_at, pause_until)
VALUES ($1, $2, $3, $4, COALESCE($5::jsonb, '{}'), COALESCE($6::jsonb, '{}'),
        to_timestamp($7::float8 / 1000), to_timestamp($8::float8 / 1000))
ON CONFLICT (trader_id) DO NOTHING
RETURNING {{trader_state_columns}};

-- name: trader_ids
SELECT trader_id FROM trader_state ORDER BY 1;
