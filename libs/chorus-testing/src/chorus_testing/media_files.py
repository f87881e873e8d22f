"""Tiny, well-formed media files built byte by byte (PNG, JPEG, GIF, WebP, MP4/QuickTime),
for tests that upload media without shipping binary fixtures."""

from __future__ import annotations

import struct
import zlib


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of the given size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int, *, exif_bytes: int = 0) -> bytes:
    """JPEG markers up to the frame header: SOI, APP0 (JFIF), optional APP1 padding (EXIF
    sits before the frame in camera files), DQT, SOF0 with the size, then EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    app1 = b""
    if exif_bytes:
        app1 = b"\xff\xe1" + struct.pack(">H", exif_bytes + 2) + b"\xff" * exif_bytes
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes(range(64))
    sof0 = (
        b"\xff\xc0"
        + struct.pack(">HBHHB", 11, 8, height, width, 1)
        + b"\x01\x11\x00"  # one component, no subsampling, table 0
    )
    return b"\xff\xd8" + app0 + app1 + dqt + sof0 + b"\xff\xd9"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b"\x3b"


def webp_vp8x(width: int, height: int) -> bytes:
    body = (
        b"WEBP"
        + b"VP8X"
        + struct.pack("<I", 10)
        + b"\x00\x00\x00\x00"
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    if version == 1:
        head = b"\x01\x00\x00\x00" + struct.pack(">QQIQ", 0, 0, timescale, duration)
    else:
        head = b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, timescale, duration)
    # rate, volume, reserved, matrix, pre-defined, next track id
    rest = struct.pack(">IH", 0x00010000, 0x0100) + b"\x00" * 10 + b"\x00" * 36 + b"\x00" * 24
    return box(b"mvhd", head + rest + struct.pack(">I", 2))


def tkhd(width: int, height: int, *, version: int = 0) -> bytes:
    if version == 1:
        head = b"\x01\x00\x00\x03" + struct.pack(">QQIIQ", 0, 0, 1, 0, 0)
    else:
        head = b"\x00\x00\x00\x03" + struct.pack(">IIIII", 0, 0, 1, 0, 0)
    middle = b"\x00" * 8 + struct.pack(">hhhH", 0, 0, 0, 0) + b"\x00" * 36
    return box(b"tkhd", head + middle + struct.pack(">II", width << 16, height << 16))


def mp4(
    seconds: float,
    *,
    width: int = 1280,
    height: int = 720,
    brand: bytes = b"isom",
    version: int = 0,
    moov_last: bool = False,
    mdat_bytes: int = 64,
) -> bytes:
    """An MP4 (or QuickTime, brand `qt  `) skeleton: ftyp, moov(mvhd, trak(tkhd)), mdat."""
    timescale = 600
    ftyp = box(b"ftyp", brand + b"\x00\x00\x02\x00" + brand + b"mp41")
    moov = box(
        b"moov",
        mvhd(timescale, round(seconds * timescale), version=version)
        + box(b"trak", tkhd(width, height, version=version)),
    )
    mdat = box(b"mdat", b"\x00" * mdat_bytes)
    return ftyp + (mdat + moov if moov_last else moov + mdat)
