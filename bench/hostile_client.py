#!/usr/bin/env python3
"""Hostile EngineStore clients for bench/hostile (Python 3 stdlib only; frames per proto-spec §3).

  hostile_client.py flood --socket S [--connections N] [--seconds T] [--stats]
      N connections say Hello, then pipeline Pings with 1 KiB payloads (or, with --stats, Stats
      requests: each reply is the whole metrics text) and never read a reply.
  hostile_client.py lag --socket S [--behind BYTES] [--seconds T]
      one connection pipelines 1 KiB Pings and reads replies, staying BYTES of replies behind.
  hostile_client.py hold --socket S [--connections N] [--seconds T]
      opens N connections (no Hello) and holds them; counts the ones the server refused.

Each prints one line of key=value figures on stdout when done.
"""
import argparse
import os
import select
import socket
import struct
import sys
import time

# The frame and payload codec of the repository's Python client (clients/python), not a second copy.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
from engine_store_client import Frame, encode_message  # noqa: E402


def frame(kind, method, req_id, payload):
    return Frame(kind, method, req_id, payload).encode()


HELLO = frame(1, 1, 1, encode_message("HelloRequest", {"min_version": 1, "max_version": 1, "client_name": "hostile"}))
PING_PAYLOAD = encode_message("PingMessage", {"payload": b"\x5a" * 1024})
PING = frame(1, 6, 2, PING_PAYLOAD)   # Pings take no in-flight slot: one request id serves them all
PINGS = PING * 64
# Stats requests are answered by a worker and take an in-flight slot: ids unique across 4096.
STATS = b"".join(frame(1, 3, 100 + i, b"") for i in range(4096))


def read_frame(sock):
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf
    (length,) = struct.unpack(">I", exactly(4))
    body = exactly(length)
    return body[1], body[4:]   # kind, payload…


def connect(path, hello=True, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    if hello:
        s.sendall(HELLO)
        kind, _ = read_frame(s)
        if kind != 2:
            raise ConnectionError(f"Hello answered with kind {kind}")
    return s


class Sender:
    """Non-blocking pipelined Pings, whole frames in order."""

    def __init__(self, sock, frames=PINGS):
        self.sock = sock
        self.frames = frames
        self.pos = 0
        self.sent = 0
        self.closed = False
        sock.setblocking(False)

    def send_some(self, limit=None):
        if self.closed:
            return 0
        data = memoryview(self.frames)[self.pos:]
        if limit is not None:
            data = data[:limit]
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            self.closed = True
            return 0
        self.pos = (self.pos + n) % len(self.frames)
        self.sent += n
        return n


def flood(args):
    senders = []
    for _ in range(args.connections):
        senders.append(Sender(connect(args.socket), STATS if args.stats else PINGS))
    by_fd = {s.sock.fileno(): s for s in senders}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for fd, ev in poller.poll(50):
            s = by_fd[fd]
            if ev & (select.POLLERR | select.POLLHUP):
                s.closed = True
            while s.send_some():
                pass
            if s.closed:
                poller.unregister(fd)
                del by_fd[fd]
        if not by_fd:
            break
    sent = sum(s.sent for s in senders)
    closed = sum(1 for s in senders if s.closed)
    for s in senders:
        s.sock.close()
    print(f"connections={args.connections} sent_bytes={sent} sent_mib={sent / 1048576:.1f} closed_by_server={closed}")


def lag(args):
    """Stays up to `behind` bytes of replies behind: sends while less is outstanding and reads (256 KiB)
    only when that much is outstanding, or when the socket has taken nothing for 20 ms (the server
    stopped reading: its output cap binds before the wanted lag is reached)."""
    s = Sender(connect(args.socket))
    received = 0
    samples, total_behind, most_behind = 0, 0, 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end and not s.closed:
        outstanding = s.sent - received
        samples += 1
        total_behind += outstanding
        most_behind = max(most_behind, outstanding)
        if outstanding < args.behind:
            if s.send_some(args.behind - outstanding):
                continue
            _, writable, _ = select.select([], [s.sock], [], 0.02)
            if writable:
                continue
        # Read 256 KiB (or what there is), then go back to sending.
        goal = received + (256 << 10)
        try:
            while received < goal:
                data = s.sock.recv(65536)
                if not data:
                    s.closed = True
                    break
                received += len(data)
        except BlockingIOError:
            select.select([s.sock], [], [], 0.05)
    print(f"sent_mib={s.sent / 1048576:.1f} read_mib={received / 1048576:.1f} "
          f"behind_mib_avg={total_behind / max(samples, 1) / 1048576:.1f} behind_mib_max={most_behind / 1048576:.1f}")


def hold(args):
    held, refused, failed = [], 0, 0
    for _ in range(args.connections):
        try:
            held.append(connect(args.socket, hello=False, timeout=2.0))
        except OSError:
            failed += 1
    # A refused connection gets an error frame (resource_exhausted) and is closed by the server.
    deadline = time.monotonic() + 2.0
    pending = list(held)
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(pending, [], [], 0.1)
        for s in readable:
            pending.remove(s)
            refused += 1
    time.sleep(max(0.0, args.seconds - 2.0))
    for s in held:
        s.close()
    print(f"connections={args.connections} accepted={len(held) - refused} refused={refused} connect_failed={failed}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["flood", "lag", "hold"])
    p.add_argument("--socket", required=True)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--behind", type=int, default=4 << 20)
    p.add_argument("--stats", action="store_true", help="flood: Stats requests instead of Pings")
    args = p.parse_args()
    {"flood": flood, "lag": lag, "hold": hold}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
