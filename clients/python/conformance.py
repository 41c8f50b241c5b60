#!/usr/bin/env python3
"""Conformance checks of a live EngineStore server against proto-spec/README.md.

    python3 conformance.py SOCKET_PATH [--golden DIR] [--offline]

Prints one line per check (PASS/FAIL) and a summary line `conformance: N passed, M failed`.
Exit status 0 only if every check passed. The server is expected to run with its default settings
(snapshot throttle 300000 ms, max_frame_bytes advertised in HelloOk). Every run uses fresh model ids,
so the checks may run repeatedly against the same database.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import struct
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_store_client import (  # noqa: E402
    CACHE, FLAG_REPLAYED, FLAG_RETRY, HEALTH_OK, KIND_ERROR, KIND_REQUEST, KIND_RESPONSE, LONG,
    POSTGRES, SHORT, U32, Client, Connection, ConnectionClosed, ConnectionLevelError, Frame,
    FrameReader, ServerError, decode_error_payload, decode_frame, decode_message, decode_notice, encode_double,
    encode_message, encode_tag, encode_varint, new_key, now_ms, payload_message_for, read_hex_file, zigzag_encode,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_GOLDEN = os.path.normpath(os.path.join(HERE, "..", "..", "proto-spec", "golden"))
SPEC_METHODS = [1, 2, 3, 4, 5, 6, 16, 17, 18, 19, 20, 32, 33, 34, 35, 36, 37, 38, 39, 48, 49, 50]  # §6
ABSENT = object()


class CheckFailed(AssertionError):
    pass


def eq(actual, expected, what=""):
    if actual != expected or isinstance(actual, bool) != isinstance(expected, bool):
        raise CheckFailed(f"{what}: got {actual!r}, expected {expected!r}")


def ok(cond, what):
    if not cond:
        raise CheckFailed(what)


def absent(msg, name):
    if name in msg:
        raise CheckFailed(f"{name} should be absent, got {msg[name]!r}")


# raw payload pieces, for malformed requests
def vf(n, v):
    return encode_tag(n, 0) + encode_varint(v)


def lf(n, b):
    b = b.encode() if isinstance(b, str) else b
    return encode_tag(n, 2) + encode_varint(len(b)) + b


def df(n, x):
    return encode_tag(n, 1) + encode_double(x)


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.notes: list[str] = []

    def check(self, name, fn, *args):
        try:
            extra = fn(*args)
        except Exception as e:  # noqa: BLE001 - a failing check reports whatever went wrong
            self.failed += 1
            detail = str(e) if isinstance(e, (CheckFailed, ServerError)) else f"{type(e).__name__}: {e}"
            print(f"FAIL {name}: {detail}", flush=True)
            if os.environ.get("CONFORMANCE_TRACE"):
                traceback.print_exc()
            return None
        self.passed += 1
        print(f"PASS {name}" + (f" ({extra})" if isinstance(extra, str) and extra else ""), flush=True)
        return extra


def expect_error(fn, code_name, field=ABSENT, *, retryable=None):
    """fn() must raise ServerError with code_name; field=None means ErrorPayload.field absent."""
    try:
        r = fn()
    except ConnectionLevelError as e:
        raise CheckFailed(f"expected {code_name}, got a connection-level error: {e}") from None
    except ServerError as e:
        if e.code_name != code_name:
            raise CheckFailed(f"expected {code_name}, got {e}") from None
        if field is not ABSENT and e.field != field:
            raise CheckFailed(f"expected field {field!r}, got field {e.field!r} ({e.message!r})") from None
        if retryable is not None and e.retryable != retryable:
            raise CheckFailed(f"expected retryable={retryable}, got {e.retryable}") from None
        return e
    raise CheckFailed(f"expected error {code_name}, got a response {getattr(r, 'msg', r)!r}")


def eventually(read, want, timeout=3.0):
    """Reads until want(reply) is true (a `cache` answer may briefly lag Postgres, §10.6), then returns
    (reply, polls). The last reply is returned even if it never matched; the caller asserts on it."""
    end = time.monotonic() + timeout
    polls = 0
    while True:
        r = read()
        if want(r) or time.monotonic() > end:
            return r, polls
        polls += 1
        time.sleep(0.05)


# =================================================================================================
# Offline checks: golden frames (§13), §5.3 examples, §14 worked example
# =================================================================================================

GOLDEN_EXPECT = {  # file -> (kind, method, request id or None, flags or None), from the §13 table
    "hello.request.hex": (1, 1, None, None), "hello.response.hex": (2, 1, None, None),
    "health.request.hex": (1, 2, None, None), "health.response.hex": (2, 2, None, None),
    "ping.request.hex": (1, 6, 3, None), "ping.response.hex": (2, 6, 3, None),
    "save_position.request.hex": (1, 16, 7, None), "save_position.request.retry.hex": (1, 16, 8, 0x0001),
    "save_position.response.hex": (2, 16, 7, None), "save_position.response.replayed.hex": (2, 16, 8, 0x0002),
    "close_position.request.hex": (1, 17, None, None), "close_position.response.hex": (2, 17, None, None),
    "publish_trade_event.request.hex": (1, 18, None, None), "publish_trade_event.response.hex": (2, 18, None, None),
    "get_open_positions.request.hex": (1, 19, None, None), "get_open_positions.response.hex": (2, 19, None, None),
    "get_recent_trades.request.hex": (1, 20, None, None), "get_recent_trades.response.hex": (2, 20, None, None),
    "save_snapshot.request.hex": (1, 32, None, None), "save_snapshot.response.hex": (2, 32, None, None),
    "record_decision_cycle.request.hex": (1, 33, None, None),
    "record_decision_cycle.response.hex": (2, 33, None, None),
    "update_analytics.request.hex": (1, 34, None, None), "update_analytics.response.hex": (2, 34, None, None),
    "save_trader_state.request.hex": (1, 35, None, None), "save_trader_state.response.hex": (2, 35, None, None),
    "get_trader_state.request.hex": (1, 36, None, None),
    "get_last_decision.request.hex": (1, 37, None, None), "get_last_decision.response.hex": (2, 37, None, None),
    "get_leaderboard.request.hex": (1, 38, None, None), "get_leaderboard.response.hex": (2, 38, None, None),
    "error.invalid_argument.hex": (3, 16, None, None), "error.not_found.hex": (3, 17, None, None),
    "error.conflict.hex": (3, 16, None, None), "error.unavailable.hex": (3, 16, None, None),
    "error.protocol_error.hex": (3, 0, 0, None), "error.failed_precondition.hex": (3, 2, None, None),
    "notice.going_away.hex": (4, 0, 0, None),
}
GOLDEN_ERROR = {  # file -> (code, field, retryable) from §13
    "error.invalid_argument.hex": (1, "quantity", None), "error.not_found.hex": (2, None, None),
    "error.conflict.hex": (3, "idempotency_key", None), "error.unavailable.hex": (4, None, True),
    "error.protocol_error.hex": (10, None, None), "error.failed_precondition.hex": (11, None, None),
}


def golden_roundtrip(path):
    data = read_hex_file(path)
    fr = decode_frame(data)
    base = os.path.basename(path)
    kind, method, rid, flags = GOLDEN_EXPECT.get(base, (None, None, None, None))
    if kind is not None:
        eq(fr.kind, kind, "kind")
        eq(fr.method, method, "method")
    if rid is not None:
        eq(fr.request_id, rid, "request_id")
    if flags is not None:
        eq(fr.flags, flags, "flags")
    eq(fr.version, 1, "version")
    if fr.kind != KIND_REQUEST:
        eq(fr.deadline_ms, 0, "deadline_ms of a server frame")
    name = payload_message_for(fr.kind, fr.method)
    msg = decode_message(name, fr.payload)
    again = Frame(fr.kind, fr.method, fr.request_id, encode_message(name, msg), fr.flags, fr.deadline_ms,
                  fr.version).encode()
    if again != data:
        raise CheckFailed(f"re-encoded frame differs:\n  golden  {data.hex()}\n  encoded {again.hex()}")
    if base in GOLDEN_ERROR:
        code, fld, retryable = GOLDEN_ERROR[base]
        err = decode_error_payload(fr.payload)
        eq(err["code"], code, "code")
        eq(err.get("field"), fld, "field")
        if retryable is not None:
            eq(err["retryable"], retryable, "retryable")
    if base.startswith("notice."):
        eq(decode_notice(fr.payload)["code_name"], "going_away", "notice code")
    if base == "save_trader_state.response.hex":  # §10.10: both JSON fields always set in replies
        st = msg["state"]
        ok("cooldown_json" in st and "risk_guards_json" in st, "cooldown_json and risk_guards_json set")
    return f"{name}, {len(data)} bytes"


def offline_checks(r: Runner, golden_dir):
    files = sorted(glob.glob(os.path.join(golden_dir, "*.hex")))
    r.check("golden: directory has files", lambda: ok(len(files) > 0, f"no .hex files in {golden_dir}"))
    for p in files:
        r.check(f"golden: {os.path.basename(p)} decodes and re-encodes byte for byte", golden_roundtrip, p)
    missing = sorted(set(GOLDEN_EXPECT) - {os.path.basename(p) for p in files})
    r.check("golden: every file of the §13 table is present", lambda: eq(missing, [], "missing"))

    def examples():  # §5.3 example table
        sz = lambda n: encode_varint(zigzag_encode(n)).hex()  # noqa: E731
        eq([sz(0), sz(-1), sz(1), sz(-2), sz(2)], ["00", "01", "02", "03", "04"], "sint64 small")
        eq(sz(1700000000000), "80a0abfef962", "sint64 1700000000000")
        eq(sz(-(1 << 63)), "ffffffffffffffffff01", "sint64 -2^63")
        eq(encode_varint(300).hex(), "ac02", "uint 300")
        eq(encode_varint(4194304).hex(), "80808002", "uint 4194304")
        eq(encode_double(1.5).hex(), "000000000000f83f", "double 1.5")
        eq(encode_double(0.5).hex(), "000000000000e03f", "double 0.5")
        eq(vf(16, 1).hex()[:4], "8001", "field 16 tag")
        eq(df(6, 0.5).hex(), "31000000000000e03f", "quantity 0.5")
    r.check("codec: §5.3 encoding examples", examples)

    def worked():  # §14
        payload = encode_message("HelloRequest", {"min_version": 1, "max_version": 1, "client_name": "probe"})
        f = Frame(1, 1, 1, payload).encode()
        eq(f.hex(), "00000019010100010000000100000000000008011001" "1a0570726f6265", "§14 frame")
        got = FrameReader().feed(f[:7]) + FrameReader().feed(b"")
        eq(got, [], "partial frame")
        rd = FrameReader()
        frames = [x for b in (f + f) for x in rd.feed(bytes([b]))]  # byte by byte, two frames
        eq(len(frames), 2, "frames from a split stream")
        eq(decode_message("HelloRequest", frames[1].payload)["client_name"], "probe", "client_name")
    r.check("codec: §14 worked example, split and merged frames", worked)

    def strict_decoder():  # §5.2, §5.4, §5.5 on this codec
        cases = [
            (vf(1, 1) + vf(1, 1), "invalid_argument", "min_version"),      # duplicate
            (lf(1, b"\x01"), "invalid_argument", "min_version"),           # wrong wire type
            (vf(1, 1 << 32), "invalid_argument", "min_version"),           # uint32 overflow
            (vf(1, 1) + lf(3, b"\xff"), "invalid_argument", "client_name"),  # invalid UTF-8
            (vf(2, 1), "invalid_argument", "min_version"),                 # missing required
            (vf(1, 1) + b"\x1a\x05ab", "protocol_error", None),            # truncated
            (vf(1, 1) + b"\x0b", "protocol_error", None),                  # wire type 3
            (b"\x08" + b"\xff" * 9 + b"\x02", "protocol_error", None),     # varint wider than 64 bits
            (b"\x08" + b"\x80" * 10 + b"\x00", "protocol_error", None),    # varint longer than 10 bytes
            (b"\x00\x01", "protocol_error", None),                         # field number 0
        ]
        for payload, code, fld in cases:
            try:
                decode_message("HelloRequest", payload)
            except Exception as e:  # noqa: BLE001
                eq((getattr(e, "code", None), getattr(e, "field", None)), (code, fld), payload.hex())
            else:
                raise CheckFailed(f"{payload.hex()} decoded")
        m = decode_message("HelloRequest", vf(1, 1) + vf(99, 5) + lf(100, b"xyz") + vf(2, 1))  # unknown: skipped
        eq(m["max_version"], 1, "max_version")
        eq(decode_message("HelloRequest", b"\x08\x81\x00")["min_version"], 1, "non-minimal varint accepted")
    r.check("codec: strict decoding rules (§5.4, §5.5) in this client", strict_decoder)


# =================================================================================================
# Online checks
# =================================================================================================

class FrameAudit:
    """Header rules of §3.2 for every frame the server sends: version 1, deadline_ms 0, flags only `replayed`
    (responses) or 0 (errors, notices), request id 0 exactly with method 0 for errors and notices."""

    def __init__(self):
        self.count = 0
        self.bad: list[str] = []

    def __call__(self, fr: Frame):
        self.count += 1
        problems = []
        if fr.version != 1:
            problems.append(f"version {fr.version}")
        if fr.deadline_ms != 0:
            problems.append(f"deadline_ms {fr.deadline_ms}")
        if fr.kind == KIND_RESPONSE and fr.flags & ~FLAG_REPLAYED:
            problems.append(f"flags {fr.flags:#x}")
        if fr.kind in (KIND_ERROR, 4) and fr.flags != 0:
            problems.append(f"flags {fr.flags:#x}")
        if fr.kind in (KIND_ERROR, 4) and (fr.request_id == 0) != (fr.method == 0):
            problems.append(f"request id {fr.request_id} with method {fr.method}")
        if fr.kind == KIND_RESPONSE and fr.request_id == 0:
            problems.append("a response with request id 0")
        if problems and len(self.bad) < 10:
            self.bad.append(f"kind {fr.kind} method {fr.method} request {fr.request_id}: {', '.join(problems)}")


class Online:
    def __init__(self, r: Runner, path: str):
        self.r = r
        self.path = path
        self.run = os.urandom(4).hex()
        self.t0 = now_ms()
        self.c: Client | None = None
        self.hello = None

    def model(self, suffix):
        return f"conf-{self.run}-{suffix}"

    def raw(self) -> Connection:
        return Connection(self.path, timeout=10)

    def raw_hello(self) -> Connection:
        conn = self.raw()
        conn.do_hello(1, 1, "conformance-raw")
        return conn

    # ---------------------------------------------------------------------------------------------
    def all(self):
        r = self.r
        r.check("hello: HelloOk fields and header", self.t_hello)
        if self.c is None:
            return
        r.check("ping: echoes the payload; empty and 1024 bytes accepted", self.t_ping)
        r.check("ping: 1025 bytes -> invalid_argument field payload", self.t_ping_too_long)
        r.check("health: ok with both components", self.t_health)
        r.check("stats: prometheus text", self.t_stats)
        self.positions()
        self.trade_events()
        self.snapshots()
        self.decisions()
        self.analytics()
        self.trader_state()
        self.market_data()
        self.operations()
        self.field_errors()
        self.hello_errors()
        self.protocol_errors()
        r.check("health: still ok at the end; notices none", self.t_health_end)
        audit = Connection.frame_observer
        if isinstance(audit, FrameAudit):
            r.check("frames: every server frame has version 1, deadline_ms 0 and the flags of §3.2",
                    lambda: (eq(audit.bad, [], "frames"), f"{audit.count} frames")[1])

    # ---------------------------------------------------------------------------------------------
    def t_hello(self):
        conn = self.raw()
        rid = conn.send_request(1, encode_message("HelloRequest", {"min_version": 1, "max_version": 1,
                                                                   "client_name": "conformance"}))
        fr = conn.wait(rid)
        eq(fr.kind, KIND_RESPONSE, "kind")
        eq((fr.version, fr.method, fr.request_id, fr.deadline_ms), (1, 1, rid, 0), "header")
        h = decode_message("HelloResponse", fr.payload)
        eq(h["version"], 1, "version")
        eq(h["methods"], SPEC_METHODS, "methods (§6)")
        ok(h["max_frame_bytes"] >= 14, f"max_frame_bytes {h['max_frame_bytes']}")
        ok(h["instance_id"] != "", "instance_id set")
        conn.close()
        self.c = Client(self.path, client_name="conformance")
        self.hello = self.c.hello_reply.msg
        eq(self.hello["instance_id"], h["instance_id"], "instance_id stable across connections")
        return (f"server {h['server_name']!r} {h['server_version']!r}, max_frame_bytes {h['max_frame_bytes']}, "
                f"max_in_flight {h['max_in_flight']}")

    def t_ping(self):
        c = self.c
        r1 = c.ping(b"\xca\xfe")
        eq(r1["payload"], b"\xca\xfe", "payload")
        eq(r1.payload, b"\x0a\x02\xca\xfe", "response payload bytes")
        eq(r1.frame.flags, 0, "flags")
        r2 = c.ping()
        absent(r2.msg, "payload")
        eq(r2.payload, b"", "empty ping payload")
        big = bytes(range(256)) * 4
        eq(c.ping(big)["payload"], big, "1024 bytes")
        eq(c.ping(b"x", deadline_ms=1)["payload"], b"x", "ping ignores deadline_ms")

    def t_ping_too_long(self):
        expect_error(lambda: self.c.ping(b"x" * 1025), "invalid_argument", "payload", retryable=False)

    def t_health(self):
        h = self.c.health(deadline_ms=5000)
        eq(h["status"], HEALTH_OK, "status")
        for comp in ("postgres", "redis"):
            eq(h[comp]["ok"], True, f"{comp}.ok")
            absent(h[comp], "error")
        eq(h["instance_id"], self.hello["instance_id"], "instance_id")
        eq(h["server_version"], self.hello["server_version"], "server_version")
        ok(h["open_connections"] >= 1, f"open_connections {h['open_connections']}")
        ok(h["uptime_ms"] > 0, "uptime_ms")
        return f"postgres {h['postgres']['latency_us']} µs, redis {h['redis']['latency_us']} µs"

    def t_health_end(self):
        self.t_health()
        eq(self.c.conn.notices, [], "notices")

    def t_stats(self):
        s = self.c.stats()
        ok(len(s["prometheus_text"]) > 0, "prometheus_text empty")
        ok(s["prometheus_text"].endswith("\n") or "\n" in s["prometheus_text"], "text format")
        return f"{len(s['prometheus_text'])} bytes"

    # ---------------------------------------------------------------------------------------------
    def positions(self):
        r, c = self.r, self.c
        m = self.model("pos")
        self.m_pos = m
        st = {}
        entry_t = self.t0 - 3_600_000

        def open_():
            k = new_key("open")
            rep = c.save_position(k, m, "btc", exchange_provider="hyperliquid", side=LONG, quantity=1.0,
                                  entry_price=100.0, entry_time_ms=entry_t, leverage=10.0, confidence=0.75,
                                  risk_usd=50.0, commission=2.0, current_price=100.0, wait_for_fill=False,
                                  exit_plan_json='{"tp": 120, "sl": 90}', entry_oid=12345)
            eq(rep.frame.kind, KIND_RESPONSE, "kind")
            eq(rep.frame.flags & FLAG_REPLAYED, 0, "replayed flag")
            eq(rep.frame.method, 16, "method echoed")
            eq(rep["opened"], True, "opened")
            ok(rep["position_id"] != "", "position_id")
            ok(self.t0 - 60_000 <= rep["updated_at_ms"] <= now_ms() + 60_000, f"updated_at_ms {rep['updated_at_ms']}")
            st["pid"] = rep["position_id"]
            st["open_at"] = rep["updated_at_ms"]
            st["open_key"] = k
            st["open_reply"] = rep
        r.check("save_position: open (lower-case symbol)", open_)

        def replay():
            k = st["open_key"]
            first = st["open_reply"]
            rep = c.save_position(k, m, "btc", flags=FLAG_RETRY, exchange_provider="hyperliquid", side=LONG,
                                  quantity=1.0, entry_price=100.0, entry_time_ms=entry_t, leverage=10.0,
                                  confidence=0.75, risk_usd=50.0, commission=2.0, current_price=100.0,
                                  wait_for_fill=False, exit_plan_json='{"tp": 120, "sl": 90}', entry_oid=12345)
            eq(rep.replayed, True, "replayed flag")
            eq(rep.payload, first.payload, "recorded response payload")
            eq(rep["opened"], True, "opened as the first time")
        r.check("idempotency: same key, same payload -> recorded reply with replayed flag", replay)

        def conflict():
            expect_error(lambda: c.save_position(st["open_key"], m, "btc", exchange_provider="hyperliquid",
                                                 side=LONG, quantity=2.0, entry_price=100.0, entry_time_ms=entry_t),
                         "conflict", "idempotency_key", retryable=False)
            expect_error(lambda: c.publish_trade_event(st["open_key"], new_key("t"), m, "BTC", "fill", self.t0),
                         "conflict", "idempotency_key")
        r.check("idempotency: same key, other payload or other method -> conflict field idempotency_key", conflict)

        def update():
            rep = c.save_position(new_key("upd"), m, "BTC", confidence=0.5)
            eq(rep["opened"], False, "opened")
            eq(rep["position_id"], st["pid"], "position_id")
            ok(rep["updated_at_ms"] >= st["open_at"], "updated_at_ms does not go back")
        r.check("save_position: update of the open position", update)

        def read_open():
            want = {"symbol": "BTC", "side": LONG, "quantity": 1.0, "entry_price": 100.0, "leverage": 10.0,
                    "confidence": 0.5, "risk_usd": 50.0, "exchange": "hyperliquid"}
            rep, polls = eventually(lambda: c.get_open_positions(m),
                                    lambda x: len(x["positions"]) == 1 and
                                    all(x["positions"][0].get(k) == v for k, v in want.items()))
            eq(len(rep["positions"]), 1, "positions")
            p = dict(rep["positions"][0])
            ok(st["open_at"] <= p.pop("updated_at_ms") <= now_ms() + 60_000, "updated_at_ms")
            eq(p, want, "position")
            ok(rep["source"] in (CACHE, POSTGRES), "source")
            return f"source {rep['source']}" + (f", {polls} polls for the cache to catch up" if polls else "")
        r.check("get_open_positions: the open position with exact values", read_open)

        def partial():
            t = self.t0 - 2000
            rep = c.close_position(new_key("pc"), m, "btc", 110.0, t, exit_size=0.25, exit_commission=0.25,
                                   trade_id=f"x-{self.run}-1", exit_oid=77, exit_crossed=True)
            ok(re.fullmatch(re.escape(f"{m}|BTC|{t}|") + r"[0-9a-f]{8}", rep["trade_row_id"]) is not None,
               f"trade_row_id {rep['trade_row_id']!r}")
            got = {k: rep[k] for k in ("position_id", "fully_closed", "closed_size", "remaining_size",
                                       "realized_gross_pnl", "realized_net_pnl", "total_commission")}
            # gross (110-100)*0.25 = 2.5; entry share 2.0*0.25/1.0 = 0.5; net 2.5-0.5-0.25 = 1.75
            eq(got, {"position_id": st["pid"], "fully_closed": False, "closed_size": 0.25, "remaining_size": 0.75,
                     "realized_gross_pnl": 2.5, "realized_net_pnl": 1.75, "total_commission": 0.75}, "close")
            st["t_partial"] = t
        r.check("close_position: partial close, exact PnL and commission math", partial)

        def after_partial():
            rep, polls = eventually(lambda: c.get_open_positions(m),
                                    lambda x: [p["quantity"] for p in x["positions"]] == [0.75])
            eq([(p["symbol"], p["quantity"]) for p in rep["positions"]], [("BTC", 0.75)], "positions")
            return f"source {rep['source']}" + (f", {polls} polls" if polls else "")
        r.check("get_open_positions: quantity 0.75 after the partial close", after_partial)

        def too_big():
            expect_error(lambda: c.close_position(new_key("big"), m, "BTC", 100.0, self.t0, exit_size=0.75001),
                         "invalid_argument", "exit_size")
        r.check("close_position: exit_size above the open size -> invalid_argument field exit_size", too_big)

        def full():
            t = self.t0 - 1000
            rep = c.close_position(new_key("fc"), m, "BTC", 90.0, t)
            # remaining commission 1.5, all of it; gross (90-100)*0.75 = -7.5; net -9.0
            got = {k: rep[k] for k in ("position_id", "fully_closed", "closed_size", "remaining_size",
                                       "realized_gross_pnl", "realized_net_pnl", "total_commission")}
            eq(got, {"position_id": st["pid"], "fully_closed": True, "closed_size": 0.75, "remaining_size": 0.0,
                     "realized_gross_pnl": -7.5, "realized_net_pnl": -9.0, "total_commission": 1.5}, "close")
            st["t_full"] = t
        r.check("close_position: full close (exit_size absent)", full)

        def none_open():
            rep, polls = eventually(lambda: c.get_open_positions(m), lambda x: x["positions"] == [])
            eq(rep["positions"], [], "positions")
            eq(rep["source"], POSTGRES, "source of an empty result (not cached, §10.6)")
        r.check("get_open_positions: none open after the full close, from postgres", none_open)

        def not_found():
            e = expect_error(lambda: c.close_position(new_key("nf"), m, "BTC", 90.0, self.t0), "not_found", None)
            eq(e.retryable, False, "retryable")
        r.check("close_position: nothing open -> not_found without field", not_found)

        def trades():
            rep, polls = eventually(lambda: c.get_recent_trades(m, 10), lambda x: len(x["trades"]) == 2)
            common = {"model_id": m, "symbol": "BTC", "side": LONG, "entry_price": 100.0, "confidence": 0.5,
                      "exchange": "hyperliquid", "entry_time_ms": entry_t, "leverage": 10.0}
            eq(rep["trades"], [
                dict(common, quantity=0.75, exit_price=90.0, realized_pnl=-9.0, closed_at_ms=st["t_full"],
                     position_size=0.75),
                dict(common, quantity=0.25, exit_price=110.0, realized_pnl=1.75, closed_at_ms=st["t_partial"],
                     position_size=0.25),
            ], "trades, newest first")
            one = c.get_recent_trades(m, 1)
            eq([t["closed_at_ms"] for t in one["trades"]], [st["t_full"]], "limit 1")
            return f"source {rep['source']}" + (f", {polls} polls" if polls else "")
        r.check("get_recent_trades: both closes, newest first, exact values", trades)

        def default_limit():
            f = c.conn.request_raw(20, lf(1, m))  # limit absent -> 20
            rep = c.conn.decode_answer(f, "GetRecentTradesResponse")
            eq(len(rep["trades"]), 2, "trades")
        r.check("get_recent_trades: absent limit reads as the default", default_limit)

        def short():
            ms = self.model("short")
            c.save_position(new_key("o"), ms, "ETH", exchange_provider="binance", side=SHORT, quantity=2.0,
                            entry_price=50.0, entry_time_ms=entry_t)
            rep = c.close_position(new_key("c"), ms, "ETH", 40.0, self.t0, exit_commission=0.5)
            eq((rep["fully_closed"], rep["closed_size"], rep["realized_gross_pnl"], rep["realized_net_pnl"],
                rep["total_commission"]), (True, 2.0, 20.0, 19.5, 0.5), "short close")
        r.check("close_position: short position, gross negated", short)

        def reopen():
            rep = c.save_position(new_key("re"), m, "BTC", exchange_provider="hyperliquid", side=SHORT,
                                  quantity=3.0, entry_price=95.0, entry_time_ms=self.t0 - 500)
            eq(rep["opened"], True, "opened")
            ok(rep["position_id"] != st["pid"], "a new lifecycle id")
        r.check("save_position: reopen after a full close is a new lifecycle", reopen)

        def failed_key_not_recorded():
            k = new_key("bad")
            expect_error(lambda: c.save_position(k, m, "SOL", exchange_provider="hyperliquid", side=LONG,
                                                 quantity=-1.0, entry_price=150.0, entry_time_ms=entry_t),
                         "invalid_argument", "quantity")
            rep = c.save_position(k, m, "SOL", exchange_provider="hyperliquid", side=LONG, quantity=2.0,
                                  entry_price=150.0, entry_time_ms=entry_t)
            eq((rep["opened"], rep.replayed), (True, False), "executed")
        r.check("idempotency: a failed request leaves no record (same key then succeeds)", failed_key_not_recorded)

    # ---------------------------------------------------------------------------------------------
    def trade_events(self):
        r, c = self.r, self.c
        m = self.model("ev")
        tid = f"fill-{self.run}-1"
        st = {}

        def first():
            k = new_key("ev")
            kw = dict(side=LONG, price=100.5, size=0.5, fee=-0.01, payload_json='{"venue": "hl", "n": 1}')
            rep = c.publish_trade_event(k, tid, m, "btc", "fill", self.t0, **kw)
            eq((rep["duplicate"], rep["event_id"]), (False, tid), "first event")
            st.update(k=k, kw=kw, rep=rep)
        r.check("publish_trade_event: new event", first)

        def dup():
            rep = c.publish_trade_event(new_key("ev2"), tid, m, "BTC", "liquidation", self.t0 + 1)
            eq((rep["duplicate"], rep["event_id"], rep.replayed), (True, tid, False), "duplicate")
        r.check("publish_trade_event: same trade_id under a new key -> duplicate", dup)

        def replay():
            rep = c.publish_trade_event(st["k"], tid, m, "btc", "fill", self.t0, flags=FLAG_RETRY, **st["kw"])
            eq(rep.replayed, True, "replayed flag")
            eq(rep.payload, st["rep"].payload, "payload")
            eq(rep["duplicate"], False, "duplicate as the first time")
        r.check("publish_trade_event: same key, same payload -> replayed, duplicate=false", replay)

        def conflict():
            expect_error(lambda: c.publish_trade_event(st["k"], tid, m, "btc", "fill", self.t0 + 5, **st["kw"]),
                         "conflict", "idempotency_key")
        r.check("publish_trade_event: same key, other payload -> conflict", conflict)

    # ---------------------------------------------------------------------------------------------
    def snapshots(self):
        r, c = self.r, self.c
        m = self.m_pos  # holds an open SOL long 2.0 @ 150 and a BTC short
        ts1 = self.t0 - 10_000

        def snap(ts, marks=(), **kw):
            s = dict(model_id=m, timestamp_ms=ts, dollar_equity=0.0, marks=list(marks), **kw)
            return c.save_snapshot(new_key("snap"), [s])["results"]

        def first():
            res = snap(ts1, [{"symbol": "sol", "current_price": 155.0, "unrealized_pnl": 10.0},
                             {"symbol": "DOGE", "current_price": 0.1}],
                       realized_pnl=1.75, cum_pnl_pct=1.5, since_inception_hourly_marker=3,
                       metadata_json='{"note": "conformance"}')
            eq(res, [{"model_id": m, "stored": True, "last_stored_ms": ts1, "marks_applied": 1}], "results")
        r.check("save_snapshot: stored; dollar_equity 0; mark without a position ignored", first)

        def throttled():
            res = snap(ts1 + 1000, [{"symbol": "SOL", "current_price": 156.0}])
            eq(res, [{"model_id": m, "stored": False, "last_stored_ms": ts1, "marks_applied": 1}], "results")
        r.check("save_snapshot: within the interval -> throttled, marks still applied", throttled)

        def upsert():
            eq(snap(ts1), [{"model_id": m, "stored": True, "last_stored_ms": ts1, "marks_applied": 0}], "results")
        r.check("save_snapshot: same timestamp -> stored (upsert)", upsert)

        def later_and_older():
            eq(snap(ts1 + 300_000), [{"model_id": m, "stored": True, "last_stored_ms": ts1 + 300_000,
                                      "marks_applied": 0}], "a later snapshot")
            eq(snap(ts1 - 300_000), [{"model_id": m, "stored": True, "last_stored_ms": ts1 + 300_000,
                                      "marks_applied": 0}], "an older snapshot")
        r.check("save_snapshot: interval apart, later and older -> stored, last_stored_ms = max", later_and_older)

        def two_models():
            m2 = self.model("snap2")
            res = c.save_snapshot(new_key("snap"), [
                {"model_id": m2, "timestamp_ms": ts1, "dollar_equity": 1000.0},
                {"model_id": self.model("snap3"), "timestamp_ms": ts1, "dollar_equity": -5.0}])["results"]
            eq([(x["model_id"], x["stored"]) for x in res], [(m2, True), (self.model("snap3"), True)], "in order")
        r.check("save_snapshot: two traders, results in request order", two_models)

        def errors():
            expect_error(lambda: c.save_snapshot(new_key("s"), []), "invalid_argument", "snapshots")
            two = [{"model_id": m, "timestamp_ms": ts1, "dollar_equity": 1.0}] * 2
            expect_error(lambda: c.save_snapshot(new_key("s"), two), "invalid_argument", "snapshots.model_id")
            expect_error(lambda: snap(ts1, [{"symbol": "SOL", "current_price": -1.0}]),
                         "invalid_argument", "snapshots.marks.current_price")
            expect_error(lambda: snap(ts1, since_inception_minute_marker=1 << 31),
                         "invalid_argument", "snapshots.since_inception_marker")
            expect_error(lambda: snap(ts1, metadata_json="[1]"), "invalid_argument", "snapshots.metadata_json")
            # dollar_equity absent: a decode error inside the nested message names the inner field only (§10)
            raw_snap = lf(1, m) + vf(2, zigzag_encode(ts1))
            f = c.conn.request_raw(32, lf(1, new_key("s")) + lf(2, raw_snap))
            expect_error(lambda: c.conn.decode_answer(f, "SaveSnapshotResponse"), "invalid_argument",
                         "dollar_equity")
            mark = df(2, 1.0)  # PositionMark without symbol -> field "symbol" (the §10 example)
            snap_b = encode_message("AccountSnapshot", {"model_id": m, "timestamp_ms": ts1, "dollar_equity": 1.0}) \
                + lf(11, mark)
            f = c.conn.request_raw(32, lf(1, new_key("s")) + lf(2, snap_b))
            expect_error(lambda: c.conn.decode_answer(f, "SaveSnapshotResponse"), "invalid_argument", "symbol")
        r.check("save_snapshot: errors name nested fields (snapshots.*, inner name for decode errors)", errors)

    # ---------------------------------------------------------------------------------------------
    def decisions(self):
        r, c = self.r, self.c
        m = self.model("dec")
        st = {}

        def record():
            t = self.t0 - 2000
            rep = c.record_decision_cycle(new_key("d"), m, cycle_number=7, prompt_digest="sha256:abc",
                                          cot_trace="thinking…", success=True, executed_at_ms=t,
                                          decisions_json='[{"symbol": "btc", "action": "open_long", '
                                                         '"confidence": 0.8}, {"symbol": "eth"}]')
            ok(rep["id"] > 0, f"id {rep['id']}")
            eq(rep["executed_at_ms"], t, "executed_at_ms")
            st["t"], st["id"] = t, rep["id"]
        r.check("record_decision_cycle: stored", record)

        def last():
            want = {"model_id": m, "success": True, "timestamp_ms": st["t"], "symbol": "BTC",
                    "action": "open_long", "confidence": 1.0}  # nof0 keeps it as an integer (0.8 rounds to 1)
            rep, polls = eventually(lambda: c.get_last_decision(m),
                                    lambda x: {k: v for k, v in x.msg.items() if k != "source"} == want)
            got = dict(rep.msg)
            src = got.pop("source")
            eq(got, want, "last decision")
            ok(src in (CACHE, POSTGRES), "source")
            return f"source {src}"
        r.check("get_last_decision: first decision's symbol (upper-cased), action, confidence", last)

        def failed_cycle():
            t = self.t0 - 1000
            rep = c.record_decision_cycle(new_key("d"), m, success=False, error_message="boom",
                                          decisions_json="[]", executed_at_ms=t)
            ok(rep["id"] > st["id"], "a new row")
            want = {"model_id": m, "success": False, "timestamp_ms": t, "error": "boom"}
            rep, polls = eventually(lambda: c.get_last_decision(m),
                                    lambda x: {k: v for k, v in x.msg.items() if k != "source"} == want)
            got = dict(rep.msg)
            got.pop("source")
            eq(got, want, "last decision")
        r.check("get_last_decision: a failed cycle, no first decision -> symbol/action/confidence absent",
                failed_cycle)

        def server_time():
            before = now_ms()
            rep = c.record_decision_cycle(new_key("d"), self.model("dec2"))
            ok(before - 60_000 <= rep["executed_at_ms"] <= now_ms() + 60_000, "executed_at_ms = server time")
        r.check("record_decision_cycle: executed_at_ms absent -> server time", server_time)

        def errors():
            expect_error(lambda: c.get_last_decision(self.model("never")), "not_found", None)
            expect_error(lambda: c.record_decision_cycle(new_key("d"), m, decisions_json='{"a": 1}'),
                         "invalid_argument", "decisions_json")
            expect_error(lambda: c.record_decision_cycle(new_key("d"), m, decisions_json="[1,"),
                         "invalid_argument", "decisions_json")
            expect_error(lambda: c.record_decision_cycle(new_key("d"), m, cycle_number=-1),
                         "invalid_argument", "cycle_number")
            expect_error(lambda: c.record_decision_cycle(new_key("d"), m, prompt_digest="x" * 257),
                         "invalid_argument", "prompt_digest")
        r.check("decisions: not_found and invalid_argument cases", errors)

    # ---------------------------------------------------------------------------------------------
    def analytics(self):
        r, c = self.r, self.c
        a, b = self.model("an-a"), self.model("an-b")
        t = self.t0 - 5000

        def pl(pct, usd=0.0):
            return json.dumps({"total_pnl_pct": pct, "total_pnl_usd": usd, "sharpe_ratio": 1.5, "win_rate": 0.5})

        def update():
            rep = c.update_analytics(new_key("a"), [
                {"model_id": a, "payload_json": pl(12.5, 125.0), "server_time_ms": t,
                 "metadata_json": '{"v": 1}'},
                {"model_id": b, "payload_json": pl(-3.25), "server_time_ms": t}])
            eq(rep["updated"], 2, "updated")
            eq(c.update_analytics(new_key("a"), [{"model_id": a, "payload_json": pl(99.0),
                                                  "server_time_ms": t - 1}])["updated"], 0, "older entry")
            eq(c.update_analytics(new_key("a"), [{"model_id": a, "payload_json": pl(13.0),
                                                  "server_time_ms": t}])["updated"], 1, "equal time overwrites")
        r.check("update_analytics: written, older skipped, equal time overwrites", update)

        def board():
            def mine(x):
                return [(e["model_id"], e["score"]) for e in x["entries"] if e["model_id"] in (a, b)]
            rep, polls = eventually(lambda: c.get_leaderboard(1000), lambda x: mine(x) == [(a, 13.0), (b, -3.25)])
            eq(mine(rep), [(a, 13.0), (b, -3.25)], "our models, best first")
            scores = [e["score"] for e in rep["entries"]]
            eq(scores, sorted(scores, reverse=True), "best first")
            ok(len(c.get_leaderboard(1)["entries"]) == 1, "limit 1")
            return f"source {rep['source']}, {len(rep['entries'])} entries"
        r.check("get_leaderboard: scores = total_pnl_pct, best first", board)

        def errors():
            expect_error(lambda: c.update_analytics(new_key("a"), []), "invalid_argument", "entries")
            expect_error(lambda: c.update_analytics(new_key("a"), [
                {"model_id": a, "payload_json": '{"total_pnl_usd": 1}', "server_time_ms": t}]),
                "invalid_argument", "entries.payload_json")
            expect_error(lambda: c.update_analytics(new_key("a"), [
                {"model_id": a, "payload_json": pl(1.0), "server_time_ms": t}] * 2),
                "invalid_argument", "entries.model_id")
            expect_error(lambda: c.update_analytics(new_key("a"), [
                {"model_id": a, "payload_json": pl(1.0), "server_time_ms": 1_000_000_000}]),
                "invalid_argument", "entries.server_time_ms")
            expect_error(lambda: c.get_leaderboard(0), "invalid_argument", "limit")
            expect_error(lambda: c.get_leaderboard(1001), "invalid_argument", "limit")
        r.check("analytics: invalid_argument cases name the field", errors)

    # ---------------------------------------------------------------------------------------------
    def trader_state(self):
        r, c = self.r, self.c
        tr = self.model("trader")
        self.trader = tr
        full = {"trader_id": tr, "exchange_provider": "hyperliquid", "market_provider": "hyperliquid-md",
                "allocation_pct": 25.5, "cooldown_json": '{"BTC": 1764201600000}',
                "last_decision_at_ms": self.t0 - 1000, "pause_until_ms": self.t0 + 3_600_000}

        def norm(s):
            s = dict(s)
            for k in ("cooldown_json", "risk_guards_json"):
                if k in s:
                    s[k] = json.loads(s[k])
            return s

        want = norm(dict(full, risk_guards_json="{}"))

        def new_trader():
            expect_error(lambda: c.save_trader_state(new_key("ts"), {"trader_id": tr}),
                         "invalid_argument", "state.exchange_provider")
            expect_error(lambda: c.save_trader_state(new_key("ts"), {"trader_id": tr, "exchange_provider": "x"}),
                         "invalid_argument", "state.market_provider")
            rep = c.save_trader_state(new_key("ts"), dict(full, updated_at_ms=1))
            eq(rep["source"], POSTGRES, "source")
            got = norm(rep["state"])
            upd = got.pop("updated_at_ms", None)
            ok(upd is not None and self.t0 - 60_000 <= upd <= now_ms() + 60_000, f"updated_at_ms {upd}")
            eq(got, want, "stored state (JSON compared parsed)")
        r.check("save_trader_state: new trader; every stored field set; updated_at_ms ignored in requests",
                new_trader)

        def get():
            rep, polls = eventually(lambda: c.get_trader_state(tr),
                                    lambda x: {k: v for k, v in norm(x["state"]).items()
                                               if k != "updated_at_ms"} == want)
            got = norm(rep["state"])
            ok("updated_at_ms" in got, "updated_at_ms")
            got.pop("updated_at_ms")
            eq(got, want, "state")
            return f"source {rep['source']}"
        r.check("get_trader_state: the stored state", get)

        def partial():
            rep = c.save_trader_state(new_key("ts"), {"trader_id": tr, "allocation_pct": 30.0,
                                                      "risk_guards_json": '{"max_dd": 0.2}'})
            got = norm(rep["state"])
            got.pop("updated_at_ms")
            eq(got, dict(want, allocation_pct=30.0, risk_guards_json={"max_dd": 0.2}), "state")
        r.check("save_trader_state: partial update keeps absent fields", partial)

        def errors():
            expect_error(lambda: c.get_trader_state(self.model("nobody")), "not_found", None)
            expect_error(lambda: c.save_trader_state(new_key("ts"), {"trader_id": tr, "allocation_pct": 100.5}),
                         "invalid_argument", "state.allocation_pct")
            expect_error(lambda: c.save_trader_state(new_key("ts"), {"trader_id": tr, "cooldown_json": "[]"}),
                         "invalid_argument", "state.cooldown_json")
            expect_error(lambda: c.save_trader_state(new_key("ts"), {"trader_id": tr, "pause_until_ms":
                                                                     now_ms() + 400 * 86_400_000}),
                         "invalid_argument", "state.pause_until_ms")
            f = c.conn.request_raw(35, lf(1, new_key("ts")))  # state absent
            expect_error(lambda: c.conn.decode_answer(f, "TraderStateResponse"), "invalid_argument", "state")
        r.check("trader state: not_found and invalid_argument cases", errors)

    # ---------------------------------------------------------------------------------------------
    def market_data(self):
        r, c = self.r, self.c
        prov = f"conf{self.run}"
        st = {}

        def ticks():
            k = new_key("tk")
            batch = [{"provider": prov, "symbol": "btc", "price": 97000.5, "timestamp_ms": self.t0 - 2000,
                      "volume": 1.5},
                     {"provider": prov, "symbol": "BTC", "price": 97001.0, "timestamp_ms": self.t0 - 1000},
                     {"provider": prov, "symbol": "ETH", "price": 3500.0, "timestamp_ms": self.t0 - 1500,
                      "raw_json": '{"src": "test"}'}]
            rep = c.ingest_price_ticks(k, batch)
            eq((rep["stored"], rep["latest_updated"]), (3, 2), "stored, latest_updated")
            again = c.ingest_price_ticks(k, batch)
            eq((again.replayed, again.payload), (True, rep.payload), "replayed batch")
            expect_error(lambda: c.ingest_price_ticks(k, batch[:2]), "conflict", "idempotency_key")
            old = c.ingest_price_ticks(new_key("tk"), [{"provider": prov, "symbol": "BTC", "price": 96000.0,
                                                        "timestamp_ms": self.t0 - 5000}])
            eq((old["stored"], old["latest_updated"]), (1, 0), "an older tick is stored, latest unchanged")
            st["batch"] = batch
        r.check("ingest_price_ticks: stored, latest_updated, replay, conflict, older tick", ticks)

        def tick_errors():
            ok_tick = {"provider": prov, "symbol": "BTC", "price": 1.0, "timestamp_ms": self.t0}
            expect_error(lambda: c.ingest_price_ticks(new_key("tk"), []), "invalid_argument", "ticks")
            expect_error(lambda: c.ingest_price_ticks(new_key("tk"), [ok_tick, dict(ok_tick, price=-1.0)]),
                         "invalid_argument", "ticks.price")
            expect_error(lambda: c.ingest_price_ticks(new_key("tk"), [dict(ok_tick, timestamp_ms=self.t0 // 1000)]),
                         "invalid_argument", "ticks.timestamp_ms")
            expect_error(lambda: c.ingest_price_ticks(new_key("tk"), [dict(ok_tick, symbol="BTC USD")]),
                         "invalid_argument", "ticks.symbol")
            expect_error(lambda: c.ingest_price_ticks(new_key("tk"), [dict(ok_tick, volume=float("nan"))]),
                         "invalid_argument", "ticks.volume")
        r.check("ingest_price_ticks: a bad tick rejects the batch, field ticks.*", tick_errors)

        def assets():
            rep = c.upsert_market_assets(new_key("as"), [
                {"provider": prov, "symbol": "btc", "name": "Bitcoin", "sz_decimals": 5, "max_leverage": 50.0,
                 "only_isolated": False, "margin_table_id": 3},
                {"provider": prov, "symbol": "ETH", "is_delisted": False}])
            eq(rep["upserted"], 2, "upserted")
            eq(c.upsert_market_assets(new_key("as"), [{"provider": prov, "symbol": "ETH"}] * 2)["upserted"], 2,
               "a pair sent twice counts twice")
            expect_error(lambda: c.upsert_market_assets(new_key("as"), []), "invalid_argument", "assets")
            expect_error(lambda: c.upsert_market_assets(new_key("as"), [
                {"provider": prov, "symbol": "BTC", "max_leverage": 0.0}]), "invalid_argument", "assets.max_leverage")
            expect_error(lambda: c.upsert_market_assets(new_key("as"), [
                {"provider": prov, "symbol": "BTC", "sz_decimals": -1}]), "invalid_argument", "assets.sz_decimals")
        r.check("upsert_market_assets: upserted count and field errors", assets)

        def contexts():
            rep = c.upsert_asset_contexts(new_key("cx"), [
                {"provider": prov, "symbol": "BTC", "funding": -0.0001, "open_interest": 1000.0, "oracle_px": 97000.0,
                 "mark_px": 97001.0, "mid_px": 97000.5, "impact_pxs_json": "[97000, 97010]", "prev_day_px": 95000.0,
                 "day_ntl_vlm": 1e9, "day_base_vlm": 10000.0}])
            eq(rep["upserted"], 1, "upserted")
            expect_error(lambda: c.upsert_asset_contexts(new_key("cx"), []), "invalid_argument", "contexts")
            expect_error(lambda: c.upsert_asset_contexts(new_key("cx"), [
                {"provider": prov, "symbol": "BTC", "mark_px": -1.0}]), "invalid_argument", "contexts.mark_px")
        r.check("upsert_asset_contexts: upserted count and field errors", contexts)

    # ---------------------------------------------------------------------------------------------
    def operations(self):
        r, c = self.r, self.c
        m = self.m_pos  # open: SOL long 2.0, BTC short 3.0

        def hydrate():
            rep, polls = eventually(lambda: c.hydrate([m], [self.trader], deadline_ms=60_000),
                                    lambda x: x["ran"], timeout=10)
            eq(rep["ran"], True, "ran")
            eq(rep["models"], 1, "models")
            ok(rep["keys_written"] >= 1, f"keys_written {rep['keys_written']}")
            return f"keys_written {rep['keys_written']}, took {rep['took_ms']} ms"
        r.check("hydrate: listed model and trader", hydrate)

        def consistent():
            ex = [{"model_id": m, "symbol": "sol", "side": LONG, "quantity": 2.0},
                  {"model_id": m, "symbol": "BTC", "side": SHORT, "quantity": 3.0}]
            rep = c.check_consistency([m], exchange_positions=ex, deadline_ms=60_000)
            eq(rep["differences"], [], "differences")
            ok(rep["checked"] >= 2, f"checked {rep['checked']}")
            return f"checked {rep['checked']}"
        r.check("check_consistency: matching cache and exchange -> no differences", consistent)

        def differences():
            ex = [{"model_id": m, "symbol": "SOL", "side": SHORT, "quantity": 2.0},
                  {"model_id": m, "symbol": "BTC", "side": SHORT, "quantity": 3.0},
                  {"model_id": m, "symbol": "XRP", "side": LONG, "quantity": 1.0}]
            rep = c.check_consistency([m], exchange_positions=ex, deadline_ms=60_000)
            got = sorted((d["kind"], d["key"], d["database_value"] == "", d["other_value"] == "", d["repaired"])
                         for d in rep["differences"])
            eq(got, [("exchange_positions", f"{m}|SOL", False, False, False),
                     ("exchange_positions", f"{m}|XRP", True, False, False)], "differences")
            sol = next(d for d in rep["differences"] if d["key"].endswith("|SOL"))
            ok(sol["database_value"].startswith("long ") and sol["other_value"].startswith("short "),
               f"values {sol['database_value']!r} / {sol['other_value']!r}")
            flat = c.check_consistency([m], exchange_models=[m], deadline_ms=60_000)
            eq(sorted((d["kind"], d["key"], d["other_value"]) for d in flat["differences"]),
               [("exchange_positions", f"{m}|BTC", ""), ("exchange_positions", f"{m}|SOL", "")], "flat model")
            return f"e.g. {sol['database_value']!r} vs {sol['other_value']!r}"
        r.check("check_consistency: exchange differences reported, never repaired", differences)

        def sorted_positions():
            rep = c.get_open_positions(m)
            eq([(p["symbol"], p["side"], p["quantity"]) for p in rep["positions"]],
               [("BTC", SHORT, 3.0), ("SOL", LONG, 2.0)], "positions sorted by symbol")
            return f"source {rep['source']}"
        r.check("get_open_positions: several positions, sorted by symbol", sorted_positions)

        def repair():
            rep = c.check_consistency([m], repair=True, deadline_ms=60_000)
            eq(rep["differences"], [], "differences")
        r.check("check_consistency: repair with nothing to repair", repair)

        def errors():
            expect_error(lambda: c.hydrate(["bad\x01id"]), "invalid_argument", "models")
            expect_error(lambda: c.check_consistency(exchange_models=["x" * 129]), "invalid_argument",
                         "exchange_models")
            expect_error(lambda: c.check_consistency(exchange_positions=[
                {"model_id": m, "symbol": "SOL", "side": LONG, "quantity": -1.0}]),
                "invalid_argument", "exchange_positions.quantity")
        r.check("operations: invalid_argument cases name the field", errors)

    # ---------------------------------------------------------------------------------------------
    def field_errors(self):
        r, c = self.r, self.c
        m = self.model("err")
        conn = c.conn
        t = self.t0

        def raw(method, payload):
            resp = payload_message_for(KIND_RESPONSE, method)
            return lambda: conn.decode_answer(conn.request_raw(method, payload), resp)

        def missing():
            expect_error(raw(19, b""), "invalid_argument", "model_id", retryable=False)
            expect_error(raw(16, lf(1, new_key()) + lf(3, "BTC")), "invalid_argument", "model_id")
            expect_error(raw(16, lf(2, m) + lf(3, "BTC")), "invalid_argument", "idempotency_key")
            expect_error(raw(17, lf(1, new_key()) + lf(2, m) + lf(3, "BTC") + vf(6, zigzag_encode(t))),
                         "invalid_argument", "exit_price")
            expect_error(raw(18, lf(1, new_key()) + lf(2, "t") + lf(3, m) + lf(4, "BTC") + lf(5, "fill")),
                         "invalid_argument", "timestamp_ms")
            expect_error(lambda: c.save_position(new_key(), m, "BTC", exchange_provider="hl", quantity=1.0,
                                                 entry_price=1.0, entry_time_ms=t),
                         "invalid_argument", "side")
        r.check("errors: missing required field -> invalid_argument naming it", missing)

        def out_of_range():
            expect_error(lambda: c.save_position(new_key(), m, "BTC", exchange_provider="hl", side=LONG,
                                                 quantity=-1.0, entry_price=1.0, entry_time_ms=t),
                         "invalid_argument", "quantity")
            expect_error(lambda: c.save_position(new_key(), m, "BTC", exchange_provider="hl", side=LONG,
                                                 quantity=1.0, entry_price=float("inf"), entry_time_ms=t),
                         "invalid_argument", "entry_price")
            expect_error(lambda: c.save_position(new_key(), m, "BTC", exchange_provider="hl", side=LONG,
                                                 quantity=1.0, entry_price=1.0, entry_time_ms=t // 1000),
                         "invalid_argument", "entry_time_ms")
            expect_error(lambda: c.get_recent_trades(m, 101), "invalid_argument", "limit")
            expect_error(lambda: c.get_recent_trades(m, 0), "invalid_argument", "limit")
            expect_error(raw(20, lf(1, m) + vf(2, 1 << 32)), "invalid_argument", "limit")  # uint32 overflow
            expect_error(raw(16, lf(1, new_key()) + lf(2, m) + lf(3, "BTC") + vf(5, 3)), "invalid_argument", "side")
            expect_error(raw(16, lf(1, new_key()) + lf(2, m) + lf(3, "BTC") + vf(5, 0)), "invalid_argument", "side")
            expect_error(raw(16, lf(1, new_key()) + lf(2, m) + lf(3, "BTC") + vf(16, 2)), "invalid_argument",
                         "wait_for_fill")
            expect_error(lambda: c.get_open_positions("x" * 129), "invalid_argument", "model_id")
            expect_error(lambda: c.save_position(new_key(), m, "BTC!", confidence=1.0), "invalid_argument", "symbol")
            expect_error(lambda: c.save_position("k" * 129, m, "BTC", confidence=1.0), "invalid_argument",
                         "idempotency_key")
            expect_error(lambda: c.save_position(new_key(), m, "BTC", exit_plan_json="not json"),
                         "invalid_argument", "exit_plan_json")
            expect_error(lambda: c.save_position(new_key(), m, "BTC", entry_oid=-5), "invalid_argument", "entry_oid")
            expect_error(lambda: c.publish_trade_event(new_key(), "t", m, "BTC", "k" * 33, t), "invalid_argument",
                         "kind")
            expect_error(lambda: c.upsert_market_assets(new_key(), [{"provider": "p", "symbol": "BTC",
                                                                     "name": "a\x00b"}]),
                         "invalid_argument", "assets.name")
        r.check("errors: out-of-range values -> invalid_argument naming the field", out_of_range)

        def postgres_json():  # §10 `json`: syntax found by Postgres -> invalid_argument WITHOUT field
            prov = f"conf{self.run}j"
            expect_error(lambda: c.save_position(new_key(), m, "BTC", exchange_provider="hl", side=LONG, quantity=1.0,
                                                 entry_price=1.0, entry_time_ms=t, exit_plan_json='{"a": "\\u0000"}'),
                         "invalid_argument", None)
            expect_error(lambda: c.save_position(new_key(), m, "BTC", exchange_provider="hl", side=LONG, quantity=1.0,
                                                 entry_price=1.0, entry_time_ms=t, index_json="{bad"),
                         "invalid_argument", None)
            expect_error(lambda: c.ingest_price_ticks(new_key(), [
                {"provider": prov, "symbol": "BTC", "price": 1.0, "timestamp_ms": t},
                {"provider": prov, "symbol": "ETH", "price": 1.0, "timestamp_ms": t, "raw_json": "{nope"}]),
                "invalid_argument", None)
            rep = c.ingest_price_ticks(new_key(), [{"provider": prov, "symbol": "BTC", "price": 1.0,
                                                    "timestamp_ms": t}])
            eq(rep["latest_updated"], 1, "the rejected batch left price_latest untouched")
            expect_error(lambda: c.save_trader_state(new_key(), {"trader_id": self.model("jt"),
                                                                 "exchange_provider": "a", "market_provider": "b",
                                                                 "cooldown_json": "{bad"}),
                         "invalid_argument", None)
            eq(c.get_open_positions(m)["positions"], [], "nothing written")
        r.check("errors: invalid JSON found by Postgres -> invalid_argument without field, nothing written",
                postgres_json)

        def bad_fields():
            expect_error(raw(19, lf(1, m) + lf(1, m)), "invalid_argument", "model_id")           # duplicate
            expect_error(raw(19, vf(1, 5)), "invalid_argument", "model_id")                     # wrong wire type
            expect_error(raw(19, lf(1, b"m\xff\xfe")), "invalid_argument", "model_id")          # invalid UTF-8
            expect_error(raw(16, lf(1, new_key()) + lf(2, m) + lf(3, "BTC") + lf(6, encode_double(1.0))),
                         "invalid_argument", "quantity")                                       # LEN for a double
        r.check("errors: duplicate field, wrong wire type, invalid UTF-8 (after Hello)", bad_fields)

        def broken():
            for payload in (lf(1, m)[:-2], lf(1, m) + b"\x0b", lf(1, m) + b"\x00\x01",
                            lf(1, m) + b"\x10" + b"\xff" * 10 + b"\x01", lf(1, m) + encode_tag(1 << 29, 0) + b"\x00"):
                e = expect_error(raw(19, payload), "protocol_error", None)
                eq((e.frame.request_id != 0, e.frame.method), (True, 19), "echoed")
            eq(c.ping(b"still")["payload"], b"still", "connection stays open")
        r.check("errors: broken encoding -> protocol_error echoed, no field, connection open", broken)

        def unknown_fields():
            rep = conn.decode_answer(conn.request_raw(19, lf(1, m) + vf(99, 1) + lf(1000, b"zz") +
                                                      encode_tag(7, 5) + b"\x00\x00\x00\x00"),
                                     "GetOpenPositionsResponse")
            eq(rep["positions"], [], "positions")
        r.check("decoding: unknown fields (wire 0/2/5) are skipped", unknown_fields)

        def unknown_method():
            for mid in (7, 15, 21, 51, 0xFFFF):
                f = conn.request_raw(mid, b"")
                eq((f.kind, f.method, f.version), (KIND_ERROR, mid, 1), f"method {mid} header")
                err = decode_error_payload(f.payload)
                eq(err["code_name"], "unimplemented", f"method {mid}")
            eq(c.ping(b"open")["payload"], b"open", "connection stays open")
        r.check("errors: unknown method -> unimplemented, echoed, connection stays open", unknown_method)

        def pipelined():
            rids = [conn.send_request(6, lf(1, bytes([i]))) for i in range(5)]
            for i, rid in reversed(list(enumerate(rids))):
                f = conn.wait(rid)
                eq(decode_message("PingMessage", f.payload)["payload"], bytes([i]), f"ping {i}")
        r.check("pipelining: five requests in flight, matched by request id", pipelined)

    # ---------------------------------------------------------------------------------------------
    def expect_close_after_error(self, conn: Connection, rid: int, method: int, code: str, field=ABSENT):
        fr = conn.wait(rid)
        eq(fr.kind, KIND_ERROR, "kind")
        eq((fr.request_id, fr.method, fr.version, fr.flags, fr.deadline_ms), (rid, method, 1, 0, 0),
           "header (echoed request id and method)")
        err = decode_error_payload(fr.payload)
        eq(err["code_name"], code, f"code ({err['message']!r})")
        if field is not ABSENT:
            eq(err.get("field"), field, f"field ({err['message']!r})")
        closed, extra = conn.wait_closed(5)
        ok(closed, "connection not closed")
        eq(extra, [], "frames after the error")

    def hello_errors(self):
        r = self.r
        cases = [
            ("missing min_version", vf(2, 1) + lf(3, "c"), "invalid_argument", "min_version"),
            ("min_version above 2^32-1", vf(1, 1 << 32) + vf(2, 1), "invalid_argument", "min_version"),
            ("max_version above 2^32-1", vf(1, 1) + vf(2, 1 << 32), "invalid_argument", "max_version"),
            ("invalid UTF-8 in client_name", vf(1, 1) + vf(2, 1) + lf(3, b"ab\xc3\x28"), "invalid_argument",
             "client_name"),
            ("duplicate min_version", vf(1, 1) + vf(1, 1) + vf(2, 1), "invalid_argument", "min_version"),
            ("duplicate client_name", vf(1, 1) + lf(3, "a") + lf(3, "b"), "invalid_argument", "client_name"),
            ("wrong wire type of min_version", lf(1, b"\x01") + vf(2, 1), "invalid_argument", "min_version"),
            ("wrong wire type of client_name", vf(1, 1) + vf(3, 5), "invalid_argument", "client_name"),
            ("wrong wire type of max_version", vf(1, 1) + df(2, 1.0), "invalid_argument", "max_version"),
            ("broken encoding", vf(1, 1) + b"\x1a\x09ab", "protocol_error", None),
            ("no common version (2..3)", vf(1, 2) + vf(2, 3), "unsupported_version", ABSENT),
            ("min_version > max_version", vf(1, 1) + vf(2, 0), "unsupported_version", ABSENT),
        ]
        for label, payload, code, fld in cases:
            def one(payload=payload, code=code, fld=fld):
                conn = self.raw()
                try:
                    rid = conn.send_request(1, payload, request_id=9)
                    self.expect_close_after_error(conn, rid, 1, code, fld)
                finally:
                    conn.close()
            fdesc = "" if fld is ABSENT else (f" field {fld}" if fld else " no field")
            r.check(f"hello error: {label} -> {code}{fdesc}, then close", one)

        def version_byte():
            conn = self.raw()
            try:
                f = Frame(KIND_REQUEST, 1, 4, encode_message("HelloRequest", {"min_version": 1}), version=2)
                conn.send_raw(f.encode())
                conn.in_flight[4] = 1
                self.expect_close_after_error(conn, 4, 1, "unsupported_version")
            finally:
                conn.close()
        r.check("hello error: header version 2 before Hello -> unsupported_version, then close", version_byte)

        def before_hello():
            conn = self.raw()
            try:
                rid = conn.send_request(2, b"", request_id=5)
                self.expect_close_after_error(conn, rid, 2, "failed_precondition")
            finally:
                conn.close()
        r.check("lifecycle: a request before Hello -> failed_precondition echoed, then close", before_hello)

        def second_hello():
            conn = self.raw_hello()
            try:
                f = conn.request_raw(1, encode_message("HelloRequest", {"min_version": 1}))
                eq((f.kind, f.method), (KIND_ERROR, 1), "kind, method")
                eq(decode_error_payload(f.payload)["code_name"], "failed_precondition", "code")
                eq(conn.call("ping", {"payload": b"p"})["payload"], b"p", "connection stays open")
            finally:
                conn.close()
        r.check("lifecycle: a second Hello -> failed_precondition, connection stays open", second_hello)

        def hello_split():
            conn = self.raw()
            try:
                data = Frame(KIND_REQUEST, 1, 1, encode_message("HelloRequest", {"min_version": 1})).encode()
                for i in range(len(data)):
                    conn.send_raw(data[i:i + 1])
                    time.sleep(0.002)
                conn.in_flight[1] = 1
                rep = conn.decode_answer(conn.wait(1), "HelloResponse")
                eq(rep["version"], 1, "version")
            finally:
                conn.close()
        r.check("transport: a Hello sent one byte at a time is reassembled", hello_split)

    def protocol_errors(self):
        r = self.r
        max_frame = self.hello["max_frame_bytes"]

        def conn_level(after_hello, data, label):
            conn = self.raw_hello() if after_hello else self.raw()
            try:
                conn.send_raw(data)
                try:
                    fr = conn.recv_frame(5)
                except ConnectionClosed:
                    raise CheckFailed(f"{label}: closed without an error frame") from None
                eq(fr.kind, KIND_ERROR, "kind")
                eq((fr.request_id, fr.method, fr.version), (0, 0, 1), "connection-level header")
                err = decode_error_payload(fr.payload)
                eq(err["code_name"], "protocol_error", f"code ({err['message']!r})")
                absent(err, "field")
                closed, extra = conn.wait_closed(5)
                ok(closed, f"{label}: connection not closed")
                eq(extra, [], "frames after the error")
            finally:
                conn.close()

        hdr = lambda v, k, m, rid: struct.pack(">BBHIHI", v, k, m, rid, 0, 0)  # noqa: E731
        cases = [
            ("length 5 (< 14)", False, struct.pack(">I", 5) + b"\x01\x01\x00\x01\x00"),
            ("length 0", True, struct.pack(">I", 0)),
            ("length 13", True, struct.pack(">I", 13) + hdr(1, 1, 6, 1)[:13]),
            ("length max_frame_bytes + 1", True, struct.pack(">I", max_frame + 1)),
            ("length 2^32-1", False, struct.pack(">I", U32)),
        ]
        for label, after, data in cases:
            r.check(f"frames: bad length {label} -> protocol_error (request id 0), then close", conn_level,
                    after, data, label)

        def body(k, rid, m=6, v=1):
            b = hdr(v, k, m, rid)
            return struct.pack(">I", len(b)) + b
        for label, after, data in [
            ("kind 0", True, body(0, 1)), ("kind 9", True, body(9, 1)), ("kind 2 from a client", True, body(2, 1)),
            ("kind 3 from a client", True, body(3, 1)), ("request id 0", True, body(1, 0)),
        ]:
            r.check(f"frames: {label} -> protocol_error (request id 0), then close", conn_level, after, data, label)

        def version_after_hello():
            conn = self.raw_hello()
            try:
                f = conn.request_raw(6, b"", version=2)
                eq((f.kind, f.method), (KIND_ERROR, 6), "kind, method")
                eq(decode_error_payload(f.payload)["code_name"], "unsupported_version", "code")
                eq(conn.call("ping", {"payload": b"v"})["payload"], b"v", "connection stays open")
            finally:
                conn.close()
        r.check("frames: header version 2 after Hello -> unsupported_version, connection stays open",
                version_after_hello)

        def duplicate_in_flight():
            conn = self.raw_hello()
            try:  # a full Hydrate (Postgres reads, Redis writes) is still running when the second frame arrives
                first = Frame(KIND_REQUEST, 4, 7, b"", deadline_ms=60_000).encode()
                second = Frame(KIND_REQUEST, 2, 7, b"").encode()
                conn.send_raw(first + second)
                closed, frames = conn.wait_closed(30)
                ok(closed, "connection not closed")
                errs = [f for f in frames if f.kind == KIND_ERROR and f.request_id == 0]
                eq(len(errs), 1, f"connection-level errors among {[(f.kind, f.request_id) for f in frames]}")
                eq(errs[0].method, 0, "method of a connection-level error")
                eq(decode_error_payload(errs[0].payload)["code_name"], "protocol_error", "code")
                ok(all(f.request_id in (0, 7) for f in frames), "only answers to request 7 besides the error")
            finally:
                conn.close()
        r.check("frames: a request id still in flight -> protocol_error (request id 0), then close",
                duplicate_in_flight)

        def max_frame_ok():
            conn = self.raw_hello()
            try:  # a frame of exactly max_frame_bytes is accepted (Ping payload too long -> invalid_argument)
                n = max_frame - 14 - 1
                while 14 + 1 + len(encode_varint(n)) + n > max_frame:
                    n -= 1
                payload = lf(1, b"\x00" * n)
                eq(14 + len(payload), max_frame, "frame length")
                f = conn.request_raw(6, payload, timeout=30)
                eq(decode_error_payload(f.payload).get("field"), "payload", "field")
            finally:
                conn.close()
        r.check("frames: a frame of exactly max_frame_bytes is read (then payload too long)", max_frame_ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("socket", nargs="?", help="server socket path")
    ap.add_argument("--golden", default=DEFAULT_GOLDEN, help="golden frame directory")
    ap.add_argument("--offline", action="store_true", help="only the offline (codec and golden) checks")
    args = ap.parse_args()
    r = Runner()
    offline_checks(r, args.golden)
    if not args.offline:
        if not args.socket:
            ap.error("socket path required (or --offline)")
        Connection.frame_observer = FrameAudit()
        online = Online(r, args.socket)
        try:
            online.all()
        finally:
            if online.c:
                online.c.close()
    print(f"conformance: {r.passed} passed, {r.failed} failed", flush=True)
    return 0 if r.failed == 0 and r.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
