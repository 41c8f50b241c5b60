-- migration: one open position per model and symbol
-- nof0's own index on (model_id, symbol) WHERE status = 'open' is not unique; ours is, so the
-- database itself refuses a second open position for a model and symbol.
CREATE UNIQUE INDEX IF NOT EXISTS engine_store_positions_one_open
    ON positions (model_id, symbol) WHERE status = 'open';
