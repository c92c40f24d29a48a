#!/usr/bin/env python3
"""Draw pgsteward's application icon (a white shield with a check mark on a blue rounded
square) at the sizes Tauri needs, with nothing but the standard library."""
import struct
import sys
import zlib
from pathlib import Path


def png(size: int) -> bytes:
    s = size
    blue = (37, 99, 235)
    dark = (30, 64, 175)
    rows = []
    for y in range(s):
        row = bytearray([0])
        for x in range(s):
            # normalised coordinates in 0..1
            u, v = (x + 0.5) / s, (y + 0.5) / s
            r = 0.2  # corner radius
            cx = min(max(u, r), 1 - r)
            cy = min(max(v, r), 1 - r)
            inside = (u - cx) ** 2 + (v - cy) ** 2 <= r * r
            if not inside:
                row += bytes((0, 0, 0, 0))
                continue
            t = v
            col = tuple(int(blue[i] * (1 - t) + dark[i] * t) for i in range(3))
            # shield: top edge at v=0.2, sides converge to a point at v=0.85
            half = 0.3 if v < 0.55 else 0.3 * (0.85 - v) / 0.30
            shield = 0.2 <= v <= 0.85 and abs(u - 0.5) <= half
            if shield:
                col = (255, 255, 255)
                # check mark: two thick strokes
                def near(ax, ay, bx, by, w=0.045):
                    dx, dy = bx - ax, by - ay
                    k = max(0.0, min(1.0, ((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy)))
                    px, py = ax + k * dx, ay + k * dy
                    return (u - px) ** 2 + (v - py) ** 2 <= w * w
                if near(0.37, 0.47, 0.47, 0.58) or near(0.47, 0.58, 0.65, 0.37):
                    col = blue
            row += bytes((*col, 255))
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", s, s, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "icons")
    out.mkdir(parents=True, exist_ok=True)
    for name, size in [("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)]:
        (out / name).write_bytes(png(size))


if __name__ == "__main__":
    main()
