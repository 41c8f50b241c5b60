-- migration: varint encoder for recording replies in SQL
-- Protocol-buffer varint of a non-negative bigint, so a statement can record its own reply
-- (see SavePosition's pipelined statement).
CREATE OR REPLACE FUNCTION engine_store_varint(v bigint) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    out bytea := ''::bytea;
    b int;
BEGIN
    IF v < 0 THEN RAISE EXCEPTION 'engine_store_varint: negative value %', v; END IF;
    LOOP
        b := (v & 127)::int;
        v := v >> 7;
        IF v = 0 THEN
            RETURN out || set_byte('\x00'::bytea, 0, b);
        END IF;
        out := out || set_byte('\x00'::bytea, 0, b | 128);
    END LOOP;
END
$fn$;
