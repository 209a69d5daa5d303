#!/usr/bin/env python3
"""Slow-header clients against a running server: opens CONNECTIONS sockets that each send a
request line and then one header line a second, never finishing their headers, and prints how
many the server still holds open after SECONDS.

    python3 tests/load/slow_headers.py 127.0.0.1:8080 400 40

Nothing is asserted; the figure is printed (tests/api/hardening.rs tests the behaviour).
"""

import socket
import sys
import time


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.setblocking(False)
        sockets.append(s)
    opened = time.monotonic()
    open_ = {s: True for s in sockets}
    closed_at = []
    for s in sockets:
        send(s, open_, b"GET /health/live HTTP/1.1\r\nHost: slow\r\n")
    while time.monotonic() - opened < seconds:
        time.sleep(1)
        for s in sockets:
            if open_[s] and closed_by_server(s):
                open_[s] = False
                closed_at.append(time.monotonic() - opened)
            send(s, open_, b"X-Slow: 1\r\n")
    for s in sockets:
        if open_[s] and closed_by_server(s):
            open_[s] = False
            closed_at.append(time.monotonic() - opened)
    held = sum(open_.values())
    first = f"{min(closed_at):.1f} s" if closed_at else "-"
    last = f"{max(closed_at):.1f} s" if closed_at else "-"
    print(
        f"{count} slow-header connections: {held} still held after {seconds} s "
        f"({count - held} closed, first at {first}, last at {last})"
    )


def send(s, open_, data: bytes) -> None:
    if not open_[s]:
        return
    try:
        s.send(data)
    except OSError:
        open_[s] = False


def closed_by_server(s) -> bool:
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


if __name__ == "__main__":
    main()
