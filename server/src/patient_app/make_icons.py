"""Writes the app's PNG icons (192, 512 and a maskable 512) with the standard library only.

Run once after changing the design: python3 server/src/patient_app/make_icons.py
The same design is in assets/icon.svg.
"""
import math
import os
import struct
import zlib

TEAL = (15, 118, 110)
WHITE = (255, 255, 255)


def png(path, size, maskable):
    rows = []
    c = size / 2
    radius = size * (0.5 if maskable else 0.5)
    corner = 0 if maskable else size * 0.22
    scale = 0.8 if maskable else 1.0  # maskable icons keep their drawing in the safe zone
    ring_out, ring_in, dot = size * 0.30 * scale, size * 0.22 * scale, size * 0.11 * scale
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            px, py = x + 0.5, y + 0.5
            # rounded square mask
            dx = max(abs(px - c) - (radius - corner), 0)
            dy = max(abs(py - c) - (radius - corner), 0)
            inside = corner == 0 or math.hypot(dx, dy) <= corner
            if not inside:
                row += bytes((0, 0, 0, 0))
                continue
            d = math.hypot(px - c, py - c)
            colour = WHITE if (ring_in <= d <= ring_out or d <= dot) else TEAL
            row += bytes((*colour, 255))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)))
        f.write(chunk(b"IDAT", raw))
        f.write(chunk(b"IEND", b""))


here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
png(os.path.join(here, "icon-192.png"), 192, False)
png(os.path.join(here, "icon-512.png"), 512, False)
png(os.path.join(here, "icon-maskable-512.png"), 512, True)
