"""EngineStore wire protocol v1: an independent client written from proto-spec/README.md alone.

Python 3.11, standard library only. Section numbers (§) refer to proto-spec/README.md.

Layers:
  * varints, ZigZag, tags (§5.1-§5.3)
  * a schema-driven payload codec (§5.4-§5.6, message tables of §7, §8, §10)
  * the frame codec (§3) and an incremental frame reader (§3.7)
  * Connection: one Unix-socket connection with request ids, Hello (§4.1) and error decoding (§7)
  * Client: typed helpers for every method of §6
"""
from __future__ import annotations

import math
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

PROTOCOL_VERSION = 1
HEADER_SIZE = 14
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024  # §11; a client MUST accept at least the advertised value
MAX_FIELD_NUMBER = (1 << 29) - 1
MAX_NESTING = 16
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1

# --- frame kinds (§3.3), flags (§3.5) -------------------------------------------------------------
KIND_REQUEST, KIND_RESPONSE, KIND_ERROR, KIND_NOTICE = 1, 2, 3, 4
FLAG_RETRY = 0x0001
FLAG_REPLAYED = 0x0002

# --- error codes (§7.1) ---------------------------------------------------------------------------
ERROR_CODES = {
    1: "invalid_argument", 2: "not_found", 3: "conflict", 4: "unavailable", 5: "deadline_exceeded",
    6: "resource_exhausted", 7: "unauthenticated", 8: "internal", 9: "unimplemented",
    10: "protocol_error", 11: "failed_precondition", 12: "unsupported_version", 13: "shutting_down",
}
ERROR_CODE_BY_NAME = {v: k for k, v in ERROR_CODES.items()}
NOTICE_CODES = {1: "going_away"}

# --- methods (§6) ---------------------------------------------------------------------------------
# name -> (id, request message, response message)
METHODS: dict[str, tuple[int, str, str]] = {
    "hello": (1, "HelloRequest", "HelloResponse"),
    "health": (2, "HealthRequest", "HealthResponse"),
    "stats": (3, "StatsRequest", "StatsResponse"),
    "hydrate": (4, "HydrateRequest", "HydrateResponse"),
    "check_consistency": (5, "CheckConsistencyRequest", "CheckConsistencyResponse"),
    "ping": (6, "PingMessage", "PingMessage"),
    "save_position": (16, "SavePositionRequest", "SavePositionResponse"),
    "close_position": (17, "ClosePositionRequest", "ClosePositionResponse"),
    "publish_trade_event": (18, "PublishTradeEventRequest", "PublishTradeEventResponse"),
    "get_open_positions": (19, "GetOpenPositionsRequest", "GetOpenPositionsResponse"),
    "get_recent_trades": (20, "GetRecentTradesRequest", "GetRecentTradesResponse"),
    "save_snapshot": (32, "SaveSnapshotRequest", "SaveSnapshotResponse"),
    "record_decision_cycle": (33, "RecordDecisionCycleRequest", "RecordDecisionCycleResponse"),
    "update_analytics": (34, "UpdateAnalyticsRequest", "UpdateAnalyticsResponse"),
    "save_trader_state": (35, "SaveTraderStateRequest", "TraderStateResponse"),
    "get_trader_state": (36, "GetTraderStateRequest", "TraderStateResponse"),
    "get_last_decision": (37, "GetLastDecisionRequest", "LastDecision"),
    "get_leaderboard": (38, "GetLeaderboardRequest", "GetLeaderboardResponse"),
    "record_conversation": (39, "RecordConversationRequest", "RecordConversationResponse"),
    "ingest_price_ticks": (48, "IngestPriceTicksRequest", "IngestPriceTicksResponse"),
    "upsert_market_assets": (49, "UpsertMarketAssetsRequest", "UpsertCountResponse"),
    "upsert_asset_contexts": (50, "UpsertAssetContextsRequest", "UpsertCountResponse"),
}
METHOD_BY_ID = {v[0]: k for k, v in METHODS.items()}
WRITE_METHODS = {"save_position", "close_position", "publish_trade_event", "save_snapshot",
                 "record_decision_cycle", "update_analytics", "save_trader_state", "ingest_price_ticks",
                 "upsert_market_assets", "upsert_asset_contexts", "record_conversation"}

# --- enums (§10) ----------------------------------------------------------------------------------
ENUMS = {
    "PositionSide": {1: "long", 2: "short"},
    "ReadSource": {1: "cache", 2: "postgres"},
    "HealthStatus": {1: "ok", 2: "degraded", 3: "unhealthy"},
}
LONG, SHORT = 1, 2
CACHE, POSTGRES = 1, 2
HEALTH_OK, HEALTH_DEGRADED, HEALTH_UNHEALTHY = 1, 2, 3


# =================================================================================================
# Varints and scalar encodings (§5.2, §5.3)
# =================================================================================================

def encode_varint(v: int) -> bytes:
    """Unsigned LEB128, shortest form (§5.2)."""
    if v < 0 or v > U64:
        raise ValueError(f"varint out of range: {v}")
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zigzag_encode(n: int) -> int:
    """sint64 → unsigned (§5.3): (n << 1) ^ (n >> 63) in 64-bit two's complement."""
    if n < -(1 << 63) or n > (1 << 63) - 1:
        raise ValueError(f"sint64 out of range: {n}")
    return ((n << 1) ^ (n >> 63)) & U64


def zigzag_decode(z: int) -> int:
    """unsigned → sint64 (§5.3): (z >> 1) ^ -(z & 1)."""
    return (z >> 1) ^ -(z & 1)


def encode_tag(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)


def encode_double(x: float) -> bytes:
    return struct.pack("<d", x)  # little-endian, as protobuf requires (§1, §5.3)


# =================================================================================================
# Schema (§7.2, §8, §10)
# =================================================================================================

WIRE_VARINT, WIRE_I64, WIRE_LEN, WIRE_I32 = 0, 1, 2, 5
_TYPE_WIRE = {"uint32": 0, "uint64": 0, "sint64": 0, "bool": 0, "enum": 0,
              "double": 1, "string": 2, "bytes": 2, "message": 2}


@dataclass(frozen=True)
class F:
    """One field of a message table. presence: required | default | optional | repeated."""
    number: int
    name: str
    type: str
    presence: str = "optional"
    default: Any = None           # for presence == "default"; a callable gets the message dict
    ref: str | None = None        # enum name or message name

    @property
    def wire(self) -> int:
        return _TYPE_WIRE[self.type]


def _req(n, name, t, ref=None): return F(n, name, t, "required", None, ref)
def _opt(n, name, t, ref=None): return F(n, name, t, "optional", None, ref)
def _def(n, name, t, d, ref=None): return F(n, name, t, "default", d, ref)
def _rep(n, name, t, ref=None): return F(n, name, t, "repeated", None, ref)


def _zero(t):  # the zero value of a "default X" field whose X is the type's zero
    return {"string": "", "bytes": b"", "bool": False, "double": 0.0}.get(t, 0)


def _d(n, name, t, ref=None):
    return _def(n, name, t, _zero(t), ref)


MESSAGES: dict[str, list[F]] = {
    # §7.2, §8
    "ErrorPayload": [_req(1, "code", "uint32"), _d(2, "message", "string"), _d(3, "retryable", "bool"),
                     _opt(4, "field", "string")],
    "Notice": [_req(1, "code", "uint32"), _d(2, "message", "string")],
    # §10.1
    "HelloRequest": [_req(1, "min_version", "uint32"),
                     _def(2, "max_version", "uint32", lambda m: m.get("min_version")),
                     _opt(3, "client_name", "string")],
    "HelloResponse": [_req(1, "version", "uint32"), _d(2, "server_name", "string"),
                      _d(3, "server_version", "string"), _req(4, "max_frame_bytes", "uint32"),
                      _d(5, "max_in_flight", "uint32"), _d(6, "instance_id", "string"),
                      _rep(7, "methods", "uint64")],
    # §10.2
    "HealthRequest": [],
    "HealthResponse": [_req(1, "status", "enum", "HealthStatus"), _req(2, "postgres", "message", "ComponentHealth"),
                       _req(3, "redis", "message", "ComponentHealth"), _d(4, "uptime_ms", "uint64"),
                       _d(5, "open_connections", "uint32"), _d(6, "instance_id", "string"),
                       _d(7, "server_version", "string")],
    "ComponentHealth": [_d(1, "ok", "bool"), _d(2, "latency_us", "uint64"), _opt(3, "error", "string")],
    # §10.3
    "SavePositionRequest": [
        _req(1, "idempotency_key", "string"), _req(2, "model_id", "string"), _req(3, "symbol", "string"),
        _opt(4, "exchange_provider", "string"), _opt(5, "side", "enum", "PositionSide"),
        _opt(6, "quantity", "double"), _opt(7, "entry_price", "double"), _opt(8, "entry_time_ms", "sint64"),
        _opt(9, "leverage", "double"), _opt(10, "confidence", "double"), _opt(11, "risk_usd", "double"),
        _opt(12, "margin", "double"), _opt(13, "entry_oid", "sint64"), _opt(14, "tp_oid", "sint64"),
        _opt(15, "sl_oid", "sint64"), _opt(16, "wait_for_fill", "bool"), _opt(17, "exit_plan_json", "string"),
        _opt(18, "index_json", "string"), _opt(19, "current_price", "double"),
        _opt(20, "unrealized_pnl", "double"), _opt(21, "liquidation_price", "double"),
        _opt(22, "commission", "double"), _opt(23, "slippage", "double")],
    "SavePositionResponse": [_req(1, "position_id", "string"), _d(2, "opened", "bool"),
                             _d(3, "updated_at_ms", "sint64")],
    # §10.4
    "ClosePositionRequest": [
        _req(1, "idempotency_key", "string"), _req(2, "model_id", "string"), _req(3, "symbol", "string"),
        _req(4, "exit_price", "double"), _opt(5, "exit_size", "double"), _req(6, "exit_time_ms", "sint64"),
        _opt(7, "exit_oid", "sint64"), _opt(8, "exit_tid", "sint64"), _opt(9, "exit_commission", "double"),
        _opt(10, "exit_crossed", "bool"), _opt(11, "exit_liquidation_json", "string"),
        _opt(12, "trade_id", "string"), _opt(13, "trade_type", "string")],
    "ClosePositionResponse": [
        _req(1, "trade_row_id", "string"), _d(2, "position_id", "string"), _d(3, "fully_closed", "bool"),
        _d(4, "closed_size", "double"), _d(5, "remaining_size", "double"), _d(6, "realized_gross_pnl", "double"),
        _d(7, "realized_net_pnl", "double"), _d(8, "total_commission", "double")],
    # §10.5
    "PublishTradeEventRequest": [
        _req(1, "idempotency_key", "string"), _req(2, "trade_id", "string"), _req(3, "model_id", "string"),
        _req(4, "symbol", "string"), _req(5, "kind", "string"), _opt(6, "side", "enum", "PositionSide"),
        _opt(7, "price", "double"), _opt(8, "size", "double"), _opt(9, "fee", "double"),
        _req(10, "timestamp_ms", "sint64"), _opt(11, "payload_json", "string")],
    "PublishTradeEventResponse": [_d(1, "duplicate", "bool"), _d(2, "event_id", "string")],
    # §10.6
    "GetOpenPositionsRequest": [_req(1, "model_id", "string")],
    "GetOpenPositionsResponse": [_rep(1, "positions", "message", "PositionSnapshot"),
                                 _def(2, "source", "enum", POSTGRES, "ReadSource")],
    "PositionSnapshot": [
        _req(1, "symbol", "string"), _req(2, "side", "enum", "PositionSide"), _d(3, "quantity", "double"),
        _d(4, "entry_price", "double"), _opt(5, "leverage", "double"), _opt(6, "confidence", "double"),
        _opt(7, "risk_usd", "double"), _d(8, "updated_at_ms", "sint64"), _d(9, "exchange", "string")],
    "GetRecentTradesRequest": [_req(1, "model_id", "string"), _def(2, "limit", "uint32", 20)],
    "GetRecentTradesResponse": [_rep(1, "trades", "message", "TradeSnapshot"),
                                _def(2, "source", "enum", POSTGRES, "ReadSource")],
    "TradeSnapshot": [
        _d(1, "model_id", "string"), _req(2, "symbol", "string"), _req(3, "side", "enum", "PositionSide"),
        _d(4, "quantity", "double"), _d(5, "entry_price", "double"), _d(6, "exit_price", "double"),
        _d(7, "realized_pnl", "double"), _opt(8, "confidence", "double"), _d(9, "closed_at_ms", "sint64"),
        _d(10, "exchange", "string"), _d(11, "entry_time_ms", "sint64"), _opt(12, "leverage", "double"),
        _d(13, "position_size", "double")],
    # §10.7
    "SaveSnapshotRequest": [_req(1, "idempotency_key", "string"),
                            _rep(2, "snapshots", "message", "AccountSnapshot")],
    "AccountSnapshot": [
        _req(1, "model_id", "string"), _req(2, "timestamp_ms", "sint64"), _req(3, "dollar_equity", "double"),
        _opt(4, "realized_pnl", "double"), _opt(5, "total_unrealized_pnl", "double"),
        _opt(6, "cum_pnl_pct", "double"), _opt(7, "sharpe_ratio", "double"),
        _opt(8, "since_inception_hourly_marker", "sint64"), _opt(9, "since_inception_minute_marker", "sint64"),
        _opt(10, "metadata_json", "string"), _rep(11, "marks", "message", "PositionMark")],
    "PositionMark": [_req(1, "symbol", "string"), _req(2, "current_price", "double"),
                     _opt(3, "unrealized_pnl", "double"), _opt(4, "liquidation_price", "double")],
    "SaveSnapshotResponse": [_rep(1, "results", "message", "SnapshotResult")],
    "SnapshotResult": [_d(1, "model_id", "string"), _d(2, "stored", "bool"), _d(3, "last_stored_ms", "sint64"),
                       _d(4, "marks_applied", "uint32")],
    # §10.8
    "RecordDecisionCycleRequest": [
        _req(1, "idempotency_key", "string"), _req(2, "model_id", "string"), _opt(3, "cycle_number", "sint64"),
        _opt(4, "prompt_digest", "string"), _opt(5, "cot_trace", "string"), _opt(6, "decisions_json", "string"),
        _d(7, "success", "bool"), _opt(8, "error_message", "string"), _opt(9, "executed_at_ms", "sint64")],
    "RecordDecisionCycleResponse": [_d(1, "id", "sint64"), _d(2, "executed_at_ms", "sint64")],
    "GetLastDecisionRequest": [_req(1, "model_id", "string")],
    # §10.17
    "RecordConversationRequest": [
        _req(1, "idempotency_key", "string"), _req(2, "model_id", "string"), _req(3, "prompt", "string"),
        _opt(4, "response", "string"), _opt(5, "prompt_tokens", "uint32"), _opt(6, "completion_tokens", "uint32"),
        _opt(7, "total_tokens", "uint32"), _opt(8, "model_name", "string"), _opt(9, "timestamp_ms", "sint64"),
        _opt(10, "topic", "string")],
    "RecordConversationResponse": [_req(1, "conversation_id", "sint64"), _d(2, "timestamp_ms", "sint64")],
    "LastDecision": [
        _d(1, "model_id", "string"), _d(2, "success", "bool"), _d(3, "timestamp_ms", "sint64"),
        _opt(4, "symbol", "string"), _opt(5, "action", "string"), _opt(6, "confidence", "double"),
        _opt(7, "error", "string"), _def(8, "source", "enum", POSTGRES, "ReadSource")],
    # §10.9
    "UpdateAnalyticsRequest": [_req(1, "idempotency_key", "string"),
                               _rep(2, "entries", "message", "ModelAnalytics")],
    "ModelAnalytics": [_req(1, "model_id", "string"), _req(2, "payload_json", "string"),
                       _req(3, "server_time_ms", "sint64"), _opt(4, "metadata_json", "string")],
    "UpdateAnalyticsResponse": [_d(1, "updated", "uint32")],
    "GetLeaderboardRequest": [_def(1, "limit", "uint32", 100)],
    "GetLeaderboardResponse": [_rep(1, "entries", "message", "LeaderboardEntry"),
                               _def(2, "source", "enum", POSTGRES, "ReadSource")],
    "LeaderboardEntry": [_d(1, "model_id", "string"), _d(2, "score", "double")],
    # §10.10
    "TraderState": [
        _req(1, "trader_id", "string"), _opt(2, "exchange_provider", "string"),
        _opt(3, "market_provider", "string"), _opt(4, "allocation_pct", "double"),
        _opt(5, "cooldown_json", "string"), _opt(6, "risk_guards_json", "string"),
        _opt(7, "last_decision_at_ms", "sint64"), _opt(8, "pause_until_ms", "sint64"),
        _opt(9, "updated_at_ms", "sint64")],
    "SaveTraderStateRequest": [_req(1, "idempotency_key", "string"), _req(2, "state", "message", "TraderState")],
    "GetTraderStateRequest": [_req(1, "trader_id", "string")],
    "TraderStateResponse": [_req(1, "state", "message", "TraderState"),
                            _def(2, "source", "enum", POSTGRES, "ReadSource")],
    # §10.11
    "IngestPriceTicksRequest": [_req(1, "idempotency_key", "string"), _rep(2, "ticks", "message", "PriceTick")],
    "PriceTick": [_req(1, "provider", "string"), _req(2, "symbol", "string"), _req(3, "price", "double"),
                  _req(4, "timestamp_ms", "sint64"), _opt(5, "volume", "double"), _opt(6, "raw_json", "string")],
    "IngestPriceTicksResponse": [_d(1, "stored", "uint32"), _d(2, "latest_updated", "uint32")],
    "UpsertMarketAssetsRequest": [_req(1, "idempotency_key", "string"), _rep(2, "assets", "message", "MarketAsset")],
    "MarketAsset": [
        _req(1, "provider", "string"), _req(2, "symbol", "string"), _opt(3, "name", "string"),
        _opt(4, "sz_decimals", "sint64"), _opt(5, "max_leverage", "double"), _opt(6, "only_isolated", "bool"),
        _opt(7, "margin_table_id", "sint64"), _opt(8, "is_delisted", "bool")],
    "UpsertAssetContextsRequest": [_req(1, "idempotency_key", "string"),
                                   _rep(2, "contexts", "message", "AssetContext")],
    "AssetContext": [
        _req(1, "provider", "string"), _req(2, "symbol", "string"), _opt(3, "funding", "double"),
        _opt(4, "open_interest", "double"), _opt(5, "oracle_px", "double"), _opt(6, "mark_px", "double"),
        _opt(7, "mid_px", "double"), _opt(8, "impact_pxs_json", "string"), _opt(9, "prev_day_px", "double"),
        _opt(10, "day_ntl_vlm", "double"), _opt(11, "day_base_vlm", "double")],
    "UpsertCountResponse": [_d(1, "upserted", "uint32")],
    # §10.13
    "StatsRequest": [],
    "StatsResponse": [_d(1, "prometheus_text", "string")],
    # §10.14
    "HydrateRequest": [_rep(1, "models", "string"), _rep(2, "traders", "string")],
    "HydrateResponse": [_d(1, "ran", "bool"), _d(2, "models", "uint32"), _d(3, "keys_written", "uint32"),
                        _d(4, "took_ms", "uint64")],
    # §10.15
    "CheckConsistencyRequest": [_rep(1, "models", "string"), _d(2, "repair", "bool"),
                                _rep(3, "exchange_models", "string"),
                                _rep(4, "exchange_positions", "message", "ExchangePosition")],
    "ExchangePosition": [_req(1, "model_id", "string"), _req(2, "symbol", "string"),
                         _req(3, "side", "enum", "PositionSide"), _req(4, "quantity", "double")],
    "CheckConsistencyResponse": [_rep(1, "differences", "message", "Inconsistency"), _d(2, "checked", "uint32")],
    "Inconsistency": [_d(1, "kind", "string"), _d(2, "key", "string"), _d(3, "database_value", "string"),
                      _d(4, "other_value", "string"), _d(5, "repaired", "bool")],
    # §10.16
    "PingMessage": [_opt(1, "payload", "bytes")],
}
_BY_NUMBER = {m: {f.number: f for f in fields} for m, fields in MESSAGES.items()}
_BY_NAME = {m: {f.name: f for f in fields} for m, fields in MESSAGES.items()}


# =================================================================================================
# Payload encoding (§5.6 canonical encoding)
# =================================================================================================

class EncodeError(ValueError):
    pass


def encode_message(name: str, msg: dict[str, Any] | None = None, *, allow_missing: bool = False) -> bytes:
    """Canonical encoding (§5.6): ascending field numbers; required and default fields always written
    (a default field the caller left out is written with its default); optional fields only when set
    (a key with value None counts as not set). allow_missing=True lets a caller omit required fields
    (for error tests)."""
    msg = dict(msg or {})
    fields = MESSAGES[name]
    unknown = set(msg) - set(_BY_NAME[name])
    if unknown:
        raise EncodeError(f"{name}: unknown field(s) {sorted(unknown)}")
    out = bytearray()
    for f in fields:  # tables are in ascending number order
        v = msg.get(f.name)
        if f.presence == "repeated":
            for item in (v or []):
                out += _encode_field(f, item)
            continue
        if v is None:
            if f.presence == "required":
                if allow_missing:
                    continue
                raise EncodeError(f"{name}.{f.name} is required")
            if f.presence == "optional":
                continue
            v = f.default(msg) if callable(f.default) else f.default
            if v is None:
                continue
        out += _encode_field(f, v)
    return bytes(out)


def _encode_field(f: F, v: Any) -> bytes:
    t = f.type
    if t == "uint32":
        if not 0 <= int(v) <= U32:
            raise EncodeError(f"{f.name}: uint32 out of range: {v}")
        return encode_tag(f.number, 0) + encode_varint(int(v))
    if t == "uint64":
        return encode_tag(f.number, 0) + encode_varint(int(v))
    if t == "sint64":
        return encode_tag(f.number, 0) + encode_varint(zigzag_encode(int(v)))
    if t == "bool":
        return encode_tag(f.number, 0) + (b"\x01" if v else b"\x00")
    if t == "enum":
        if int(v) not in ENUMS[f.ref]:
            raise EncodeError(f"{f.name}: {v} is not a {f.ref} value")
        return encode_tag(f.number, 0) + encode_varint(int(v))
    if t == "double":
        return encode_tag(f.number, 1) + encode_double(float(v))
    if t == "string":
        b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
        return encode_tag(f.number, 2) + encode_varint(len(b)) + b
    if t == "bytes":
        b = bytes(v)
        return encode_tag(f.number, 2) + encode_varint(len(b)) + b
    if t == "message":
        b = v if isinstance(v, (bytes, bytearray)) else encode_message(f.ref, v)
        return encode_tag(f.number, 2) + encode_varint(len(b)) + bytes(b)
    raise AssertionError(t)


# =================================================================================================
# Payload decoding (§5.4, §5.5)
# =================================================================================================

class DecodeError(ValueError):
    """code: 'protocol_error' (broken encoding) or 'invalid_argument' (bad field, `field` set), §5.5."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.field = field


def decode_varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """Returns (value, new position). Accepts non-minimal forms; rejects > 10 bytes and > 64 bits (§5.2)."""
    end = len(buf) if end is None else end
    result = 0
    for i in range(10):
        if pos >= end:
            raise DecodeError("protocol_error", "truncated varint")
        b = buf[pos]
        pos += 1
        if i == 9 and b > 1:
            raise DecodeError("protocol_error", "varint wider than 64 bits")
        result |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            return result, pos
    raise DecodeError("protocol_error", "varint longer than 10 bytes")


def iter_fields(buf: bytes, start: int = 0, end: int | None = None):
    """Yields (number, wire_type, value, raw_start) with structure checks (§5.1): value is an int for
    wire 0, the 8 or 4 raw bytes for wire 1/5, the bytes for wire 2."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        tag_start = pos
        tag, pos = decode_varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise DecodeError("protocol_error", f"field number {number} out of range")
        if wire == 0:
            value, pos = decode_varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise DecodeError("protocol_error", "truncated I64 field")
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == 5:
            if pos + 4 > end:
                raise DecodeError("protocol_error", "truncated I32 field")
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        elif wire == 2:
            n, pos = decode_varint(buf, pos, end)
            if n > end - pos:
                raise DecodeError("protocol_error", "length runs past the end")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        else:
            raise DecodeError("protocol_error", f"wire type {wire} not allowed")
        yield number, wire, value, tag_start


def decode_message(name: str, buf: bytes, depth: int = 0) -> dict[str, Any]:
    """Strict decoder (§5.4): unknown fields skipped, duplicates / wrong wire types / bad values rejected.
    Result: repeated fields are lists (possibly empty); default fields read as their default when absent;
    absent optional fields are absent from the dict."""
    if depth > MAX_NESTING:
        raise DecodeError("protocol_error", "nesting deeper than 16 levels")
    table = _BY_NUMBER[name]
    out: dict[str, Any] = {}
    for number, wire, raw, _ in iter_fields(buf):
        f = table.get(number)
        if f is None:
            continue  # unknown: skipped (§5.4); its structure was checked by iter_fields
        if wire != f.wire:
            raise DecodeError("invalid_argument", f"{f.name}: wrong wire type {wire}", f.name)
        value = _decode_value(f, raw, depth)
        if f.presence == "repeated":
            out.setdefault(f.name, []).append(value)
        else:
            if f.name in out:
                raise DecodeError("invalid_argument", f"{f.name}: duplicate field", f.name)
            out[f.name] = value
    for f in MESSAGES[name]:
        if f.name in out:
            continue
        if f.presence == "required":
            raise DecodeError("invalid_argument", f"{f.name}: missing required field", f.name)
        if f.presence == "repeated":
            out[f.name] = []
        elif f.presence == "default":
            out[f.name] = f.default(out) if callable(f.default) else f.default
    return out


def _decode_value(f: F, raw: Any, depth: int) -> Any:
    t = f.type
    if t == "uint32":
        if raw > U32:
            raise DecodeError("invalid_argument", f"{f.name}: {raw} exceeds uint32", f.name)
        return raw
    if t == "uint64":
        return raw
    if t == "sint64":
        return zigzag_decode(raw)
    if t == "bool":
        if raw not in (0, 1):
            raise DecodeError("invalid_argument", f"{f.name}: bool value {raw}", f.name)
        return bool(raw)
    if t == "enum":
        if raw not in ENUMS[f.ref]:
            raise DecodeError("invalid_argument", f"{f.name}: {raw} is not a {f.ref} value", f.name)
        return raw
    if t == "double":
        return struct.unpack("<d", raw)[0]
    if t == "string":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("invalid_argument", f"{f.name}: invalid UTF-8", f.name) from None
    if t == "bytes":
        return raw
    if t == "message":
        return decode_message(f.ref, raw, depth + 1)
    raise AssertionError(t)


def decode_error_payload(buf: bytes) -> dict[str, Any]:
    """ErrorPayload (§7.2). `code` is a uint32 (0..255 meaningful); unknown codes, including values > 255,
    map to internal (8) as §7.1/§7.2 require. `raw_code` keeps the sent value."""
    msg = decode_message("ErrorPayload", buf)
    msg["raw_code"] = msg["code"]
    if msg["code"] not in ERROR_CODES:
        msg["code"] = 8
    msg["code_name"] = ERROR_CODES[msg["code"]]
    return msg


def decode_notice(buf: bytes) -> dict[str, Any]:
    """Notice (§8). Codes > 255 clamp to 255, as the reference decoder does; unknown codes are kept
    (the caller ignores them)."""
    msg = decode_message("Notice", buf)
    if msg["code"] > 255:
        msg["code"] = 255
    msg["code_name"] = NOTICE_CODES.get(msg["code"], "unknown")
    return msg


# =================================================================================================
# Frames (§3)
# =================================================================================================

_HEADER = struct.Struct(">BBHIHI")  # version, kind, method, request_id, flags, deadline_ms — all big-endian


@dataclass
class Frame:
    kind: int
    method: int
    request_id: int
    payload: bytes = b""
    flags: int = 0
    deadline_ms: int = 0
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        body = _HEADER.pack(self.version, self.kind, self.method, self.request_id, self.flags,
                            self.deadline_ms) + self.payload
        return struct.pack(">I", len(body)) + body

    @property
    def replayed(self) -> bool:
        return bool(self.flags & FLAG_REPLAYED)


class FrameError(Exception):
    """A frame with a bad length or an unknown kind: the client MUST close the connection (§3.7)."""


def decode_frame(data: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Frame:
    """Decodes exactly one complete frame (prefix included) with no trailing bytes."""
    if len(data) < 4:
        raise FrameError("shorter than the length prefix")
    (length,) = struct.unpack_from(">I", data)
    if not HEADER_SIZE <= length <= max_frame_bytes:
        raise FrameError(f"bad frame length {length}")
    if len(data) != 4 + length:
        raise FrameError(f"frame is {len(data)} bytes, prefix says {4 + length}")
    version, kind, method, rid, flags, deadline = _HEADER.unpack_from(data, 4)
    if kind not in (1, 2, 3, 4):
        raise FrameError(f"unknown kind {kind}")
    return Frame(kind, method, rid, bytes(data[4 + HEADER_SIZE:]), flags, deadline, version)


class FrameReader:
    """Incremental receiver (§3.7): buffers bytes until a whole frame is present."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        self.buf = bytearray()
        self.max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        frames = []
        while len(self.buf) >= 4:
            (length,) = struct.unpack_from(">I", self.buf)
            if not HEADER_SIZE <= length <= self.max_frame_bytes:  # before allocating for the body
                raise FrameError(f"bad frame length {length}")
            if len(self.buf) < 4 + length:
                break
            frames.append(decode_frame(bytes(self.buf[:4 + length]), self.max_frame_bytes))
            del self.buf[:4 + length]
        return frames


# =================================================================================================
# Golden files (§13)
# =================================================================================================

def read_hex_file(path: str) -> bytes:
    """Hex text; whitespace ignored; lines starting with '#' are comments (§13)."""
    digits = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.lstrip().startswith("#"):
                continue
            digits.append("".join(line.split()))
    return bytes.fromhex("".join(digits))


def payload_message_for(kind: int, method: int) -> str:
    """The message a payload holds, selected by kind and method (§3.1, §6)."""
    if kind == KIND_ERROR:
        return "ErrorPayload"
    if kind == KIND_NOTICE:
        return "Notice"
    name = METHOD_BY_ID.get(method)
    if name is None:
        raise KeyError(f"unknown method {method}")
    return METHODS[name][1 if kind == KIND_REQUEST else 2]


# =================================================================================================
# Connection
# =================================================================================================

class ConnectionClosed(Exception):
    pass


class EchoMismatch(Exception):
    """An answer whose header does not echo the request's method (§3.2)."""


class ServerError(Exception):
    """An error frame (kind 3) answering a request (§7)."""

    def __init__(self, frame: Frame, payload: dict[str, Any]):
        self.frame = frame
        self.payload = payload
        self.code: int = payload["code"]
        self.code_name: str = payload["code_name"]
        self.message: str = payload["message"]
        self.retryable: bool = payload["retryable"]
        self.field: str | None = payload.get("field")
        super().__init__(f"{self.code_name} ({self.code}): {self.message}"
                         + (f" [field {self.field}]" if self.field else "")
                         + f" [request {frame.request_id}, method {frame.method}]")


class ConnectionLevelError(ServerError):
    """An error frame with request id 0: the server closes the connection after it (§3.8)."""


@dataclass
class Reply:
    msg: dict[str, Any]
    frame: Frame

    @property
    def replayed(self) -> bool:
        return self.frame.replayed

    @property
    def payload(self) -> bytes:
        return self.frame.payload

    def __getitem__(self, key):
        return self.msg[key]

    def get(self, key, default=None):
        return self.msg.get(key, default)


class Connection:
    """One connection. Not thread-safe. Requests may be pipelined with send_request/wait."""

    frame_observer: Callable[[Frame], None] | None = None  # sees every frame received, on every connection

    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self._ready: list[Frame] = []           # decoded frames not yet returned by recv_frame
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.reader = FrameReader()
        self.pending: dict[int, Frame] = {}      # answers that arrived for other request ids
        self.in_flight: dict[int, int] = {}      # request id -> method id
        self.notices: list[dict[str, Any]] = []
        self.connection_errors: list[ServerError] = []
        self.closed = False
        self._next_id = 1
        self.version = PROTOCOL_VERSION
        self.hello: dict[str, Any] | None = None

    # -- raw I/O ---------------------------------------------------------------------------------
    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send_frame(self, frame: Frame):
        max_frame = self.hello["max_frame_bytes"] if self.hello else DEFAULT_MAX_FRAME_BYTES
        data = frame.encode()
        if len(data) - 4 > max_frame:
            raise EncodeError(f"frame of {len(data) - 4} bytes exceeds max_frame_bytes {max_frame}")
        self.send_raw(data)

    def next_request_id(self) -> int:
        """A counter from 1 that wraps and skips 0 and ids still in flight (§3.4)."""
        while True:
            rid = self._next_id
            self._next_id = 1 if self._next_id >= U32 else self._next_id + 1
            if rid not in self.in_flight:
                return rid

    def recv_frame(self, timeout: float | None = None) -> Frame:
        """The next frame from the server. Raises ConnectionClosed on EOF, FrameError on a bad frame
        (after closing, §3.7), socket.timeout on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if self._ready:
                return self._ready.pop(0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("no frame within the timeout")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.close()
                raise ConnectionClosed("server closed the connection")
            try:
                frames = self.reader.feed(data)
                if Connection.frame_observer is not None:
                    for fr in frames:
                        Connection.frame_observer(fr)
                self._ready.extend(frames)
            except FrameError:
                self.close()
                raise

    def wait_closed(self, timeout: float = 5.0) -> tuple[bool, list[Frame]]:
        """Reads until EOF. Returns (closed, frames received meanwhile)."""
        frames = []
        end = time.monotonic() + timeout
        while True:
            try:
                frames.append(self.recv_frame(max(0.0, end - time.monotonic())))
            except ConnectionClosed:
                return True, frames
            except (socket.timeout, TimeoutError):
                return False, frames

    # -- requests --------------------------------------------------------------------------------
    def send_request(self, method: int, payload: bytes, *, flags: int = 0, deadline_ms: int = 0,
                     request_id: int | None = None, version: int | None = None) -> int:
        rid = self.next_request_id() if request_id is None else request_id
        self.send_frame(Frame(KIND_REQUEST, method, rid, payload, flags, deadline_ms,
                              self.version if version is None else version))
        self.in_flight[rid] = method
        return rid

    def wait(self, request_id: int, timeout: float | None = None) -> Frame:
        """The answer (response or error frame) to request_id. Other answers are kept for their own wait;
        notices are recorded; a connection-level error raises ConnectionLevelError."""
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        while request_id not in self.pending:
            frame = self.recv_frame(max(0.0, end - time.monotonic()))
            if frame.kind == KIND_NOTICE:
                self.notices.append(decode_notice(frame.payload))
            elif frame.kind == KIND_ERROR and frame.request_id == 0:
                err = ConnectionLevelError(frame, decode_error_payload(frame.payload))
                self.connection_errors.append(err)
                raise err
            elif frame.kind in (KIND_RESPONSE, KIND_ERROR):
                self.pending[frame.request_id] = frame
            else:
                self.close()
                raise FrameError(f"unexpected kind {frame.kind} from the server")
        method = self.in_flight.pop(request_id, None)
        frame = self.pending.pop(request_id)
        if method is not None and frame.method != method:  # answers echo the request's method (§3.2)
            raise EchoMismatch(f"answer to request {request_id} carries method {frame.method}, sent {method}")
        return frame

    def request_raw(self, method: int, payload: bytes, **kw) -> Frame:
        timeout = kw.pop("timeout", None)
        rid = self.send_request(method, payload, **kw)
        return self.wait(rid, timeout)

    def call(self, method: str, msg: dict[str, Any] | None = None, *, flags: int = 0, deadline_ms: int = 0,
             timeout: float | None = None) -> Reply:
        """Encodes msg canonically, sends it, and decodes the answer. Raises ServerError for an error frame."""
        mid, req_name, resp_name = METHODS[method]
        frame = self.request_raw(mid, encode_message(req_name, msg), flags=flags, deadline_ms=deadline_ms,
                                 timeout=timeout)
        return self.decode_answer(frame, resp_name)

    @staticmethod
    def decode_answer(frame: Frame, resp_name: str) -> Reply:
        if frame.kind == KIND_ERROR:
            raise ServerError(frame, decode_error_payload(frame.payload))
        return Reply(decode_message(resp_name, frame.payload), frame)

    def do_hello(self, min_version: int = 1, max_version: int | None = 1, client_name: str | None = None) -> Reply:
        """Hello (§4.1). The Hello and its reply always carry header version 1."""
        msg = {"min_version": min_version, "max_version": max_version, "client_name": client_name}
        frame = self.request_raw(1, encode_message("HelloRequest", msg), version=1)
        reply = self.decode_answer(frame, "HelloResponse")
        self.hello = reply.msg
        self.version = reply.msg["version"]
        self.reader.max_frame_bytes = max(DEFAULT_MAX_FRAME_BYTES, reply.msg["max_frame_bytes"])
        return reply


# =================================================================================================
# Typed client (§6, §10)
# =================================================================================================

def new_key(prefix: str = "k") -> str:
    """A fresh idempotency key for one logical call (§9.2)."""
    return f"{prefix}-{os.urandom(12).hex()}"


class Client:
    """A connected, handshaken client with one helper per method of §6.

    Write helpers take the idempotency key as their first argument (§9.2: a new key per logical call;
    pass the same key and the same fields to retry). Every helper returns a Reply (.msg, .replayed) or
    raises ServerError."""

    def __init__(self, path: str, *, client_name: str = "engine-store-python", timeout: float = 10.0):
        self.conn = Connection(path, timeout)
        try:
            self.hello_reply = self.conn.do_hello(1, 1, client_name)
        except BaseException:
            self.conn.close()
            raise

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, msg: dict[str, Any] | None = None, **kw) -> Reply:
        return self.conn.call(method, msg, **kw)

    @staticmethod
    def _m(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        base = {k: v for k, v in base.items() if v is not None}
        base.update(extra)
        return base

    # session and operations (§10.1, §10.2, §10.13-§10.16)
    def health(self, **kw) -> Reply:
        return self.call("health", {}, **kw)

    def stats(self, **kw) -> Reply:
        return self.call("stats", {}, **kw)

    def hydrate(self, models: Iterable[str] = (), traders: Iterable[str] = (), **kw) -> Reply:
        return self.call("hydrate", {"models": list(models), "traders": list(traders)}, **kw)

    def check_consistency(self, models: Iterable[str] = (), repair: bool = False,
                          exchange_models: Iterable[str] = (), exchange_positions: Iterable[dict] = (),
                          **kw) -> Reply:
        return self.call("check_consistency", {"models": list(models), "repair": repair,
                                               "exchange_models": list(exchange_models),
                                               "exchange_positions": list(exchange_positions)}, **kw)

    def ping(self, payload: bytes = b"", **kw) -> Reply:
        return self.call("ping", {"payload": payload or None}, **kw)

    # positions and trades (§10.3-§10.6)
    def save_position(self, idempotency_key: str, model_id: str, symbol: str, *, flags: int = 0,
                      deadline_ms: int = 0, **fields) -> Reply:
        return self.call("save_position", self._m({"idempotency_key": idempotency_key, "model_id": model_id,
                                                   "symbol": symbol}, fields), flags=flags, deadline_ms=deadline_ms)

    def close_position(self, idempotency_key: str, model_id: str, symbol: str, exit_price: float,
                       exit_time_ms: int, *, flags: int = 0, deadline_ms: int = 0, **fields) -> Reply:
        return self.call("close_position", self._m({"idempotency_key": idempotency_key, "model_id": model_id,
                                                    "symbol": symbol, "exit_price": exit_price,
                                                    "exit_time_ms": exit_time_ms}, fields),
                         flags=flags, deadline_ms=deadline_ms)

    def publish_trade_event(self, idempotency_key: str, trade_id: str, model_id: str, symbol: str, kind: str,
                            timestamp_ms: int, *, flags: int = 0, deadline_ms: int = 0, **fields) -> Reply:
        return self.call("publish_trade_event", self._m(
            {"idempotency_key": idempotency_key, "trade_id": trade_id, "model_id": model_id, "symbol": symbol,
             "kind": kind, "timestamp_ms": timestamp_ms}, fields), flags=flags, deadline_ms=deadline_ms)

    def get_open_positions(self, model_id: str, **kw) -> Reply:
        return self.call("get_open_positions", {"model_id": model_id}, **kw)

    def get_recent_trades(self, model_id: str, limit: int = 20, **kw) -> Reply:
        return self.call("get_recent_trades", {"model_id": model_id, "limit": limit}, **kw)

    # account and analytics (§10.7-§10.10)
    def save_snapshot(self, idempotency_key: str, snapshots: list[dict], **kw) -> Reply:
        return self.call("save_snapshot", {"idempotency_key": idempotency_key, "snapshots": snapshots}, **kw)

    def record_decision_cycle(self, idempotency_key: str, model_id: str, *, flags: int = 0, deadline_ms: int = 0,
                              **fields) -> Reply:
        return self.call("record_decision_cycle", self._m({"idempotency_key": idempotency_key,
                                                           "model_id": model_id}, fields),
                         flags=flags, deadline_ms=deadline_ms)

    def record_conversation(self, idempotency_key: str, model_id: str, prompt: str, *, flags: int = 0,
                            deadline_ms: int = 0, **fields) -> Reply:
        return self.call("record_conversation", self._m({"idempotency_key": idempotency_key, "model_id": model_id,
                                                         "prompt": prompt}, fields),
                         flags=flags, deadline_ms=deadline_ms)

    def get_last_decision(self, model_id: str, **kw) -> Reply:
        return self.call("get_last_decision", {"model_id": model_id}, **kw)

    def update_analytics(self, idempotency_key: str, entries: list[dict], **kw) -> Reply:
        return self.call("update_analytics", {"idempotency_key": idempotency_key, "entries": entries}, **kw)

    def get_leaderboard(self, limit: int = 100, **kw) -> Reply:
        return self.call("get_leaderboard", {"limit": limit}, **kw)

    def save_trader_state(self, idempotency_key: str, state: dict, **kw) -> Reply:
        return self.call("save_trader_state", {"idempotency_key": idempotency_key, "state": state}, **kw)

    def get_trader_state(self, trader_id: str, **kw) -> Reply:
        return self.call("get_trader_state", {"trader_id": trader_id}, **kw)

    # market data (§10.11)
    def ingest_price_ticks(self, idempotency_key: str, ticks: list[dict], **kw) -> Reply:
        return self.call("ingest_price_ticks", {"idempotency_key": idempotency_key, "ticks": ticks}, **kw)

    def upsert_market_assets(self, idempotency_key: str, assets: list[dict], **kw) -> Reply:
        return self.call("upsert_market_assets", {"idempotency_key": idempotency_key, "assets": assets}, **kw)

    def upsert_asset_contexts(self, idempotency_key: str, contexts: list[dict], **kw) -> Reply:
        return self.call("upsert_asset_contexts", {"idempotency_key": idempotency_key, "contexts": contexts}, **kw)


def now_ms() -> int:
    return int(time.time() * 1000)


def is_finite(x: float) -> bool:
    return math.isfinite(x)
