"""What an uploaded file is, read from its own bytes (pure, no I/O beyond the file given).

The type comes from magic bytes, never from the client's Content-Type. Image dimensions
come from the format headers (PNG IHDR, GIF screen descriptor, JPEG SOFn, WebP VP8/VP8L/
VP8X); a video's duration from the MP4/QuickTime `moov/mvhd` box and its frame size from
the first visual track's `tkhd` — the moov box may sit at the end of the file, so the
top-level boxes are walked by seeking, never read whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
VIDEO_TYPES = ("video/mp4", "video/quicktime")
ALLOWED_TYPES = IMAGE_TYPES + VIDEO_TYPES
SNIFF_BYTES = 32  # enough for every signature below
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
}
# ISO-BMFF brands that are not video (HEIF/AVIF images, audio-only M4A/M4B/M4P).
_NOT_VIDEO_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis",
     b"M4A ", b"M4B ", b"M4P "}
)  # fmt: skip
# JPEG start-of-frame markers carry the frame size (C4 DHT, C8 JPG, CC DAC are not frames).
_JPEG_SOF = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
_MAX_BOXES = 100_000  # a corrupt file must not walk forever


class ProbeError(ValueError):
    """The file claims a format whose headers cannot be read."""


@dataclass(frozen=True)
class Probe:
    mime_type: str
    kind: str  # image | gif | video (the rules' vocabulary)
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


def sniff(head: bytes) -> str | None:
    """The allowed MIME type the leading bytes prove, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _NOT_VIDEO_BRANDS:
            return None
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head[4:8] in (b"moov", b"wide"):
        return "video/quicktime"  # classic QuickTime files start without an ftyp box
    return None


def kind_of(mime_type: str) -> str:
    if mime_type == "image/gif":
        return "gif"
    return "video" if mime_type in VIDEO_TYPES else "image"


def probe(f: BinaryIO, mime_type: str) -> Probe:
    """Dimensions (images) or duration and frame size (videos); ProbeError when unreadable."""
    kind = kind_of(mime_type)
    if kind == "video":
        duration, width, height = mp4_info(f)
        return Probe(mime_type, kind, width, height, duration)
    width, height = image_size(f, mime_type)
    return Probe(mime_type, kind, width, height)


def image_size(f: BinaryIO, mime_type: str) -> tuple[int, int]:
    f.seek(0)
    if mime_type == "image/png":
        head = f.read(24)
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ProbeError("PNG without an IHDR header")
        return _positive(*struct.unpack(">II", head[16:24]))
    if mime_type == "image/gif":
        head = f.read(10)
        if len(head) < 10:
            raise ProbeError("truncated GIF header")
        return _positive(*struct.unpack("<HH", head[6:10]))
    if mime_type == "image/webp":
        return _webp_size(f.read(30))
    if mime_type == "image/jpeg":
        return _jpeg_size(f)
    raise ProbeError(f"not an image type: {mime_type}")


# No platform takes images anywhere near this; a header claiming more is forged or broken
# (and would not fit the database's integer columns).
MAX_IMAGE_SIDE = 100_000


def _positive(width: int, height: int) -> tuple[int, int]:
    if width <= 0 or height <= 0:
        raise ProbeError("image dimensions must be positive")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise ProbeError(f"image dimensions {width}x{height} are not plausible")
    return width, height


def _webp_size(head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return _positive(width, height)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    raise ProbeError("WebP without a readable VP8/VP8L/VP8X header")


def _jpeg_size(f: BinaryIO) -> tuple[int, int]:
    f.seek(2)  # past SOI
    while True:
        byte = f.read(1)
        if not byte:
            raise ProbeError("JPEG without a frame header")
        if byte != b"\xff":
            continue  # entropy-coded data or padding between segments
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            raise ProbeError("truncated JPEG")
        code = marker[0]
        if code == 0x00 or code in _JPEG_STANDALONE:
            continue
        raw = f.read(2)
        if len(raw) < 2:
            raise ProbeError("truncated JPEG segment")
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            raise ProbeError("corrupt JPEG segment length")
        if code in _JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                raise ProbeError("truncated JPEG frame header")
            height, width = struct.unpack(">HH", frame[1:5])
            return _positive(width, height)
        if code == 0xD9:
            raise ProbeError("JPEG ended before a frame header")
        f.seek(length - 2, 1)


def _boxes(f: BinaryIO, start: int, end: int | None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in [start, end); end None = EOF."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    f.seek(0, 2)
    eof = f.tell()
    limit = eof if end is None else min(end, eof)
    while pos + 8 <= limit:
        if len(out) >= _MAX_BOXES:
            raise ProbeError("too many boxes")
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            raw = f.read(8)
            if len(raw) < 8:
                raise ProbeError("truncated 64-bit box size")
            size = struct.unpack(">Q", raw)[0]
            header = 16
        elif size == 0:
            size = limit - pos  # the box runs to the end of its container
        if size < header or pos + size > limit:
            raise ProbeError(f"corrupt box {kind!r}")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def mp4_info(f: BinaryIO) -> tuple[float, int | None, int | None]:
    """(duration seconds, width, height) from moov/mvhd and the first visual tkhd."""
    moov = next(((s, e) for k, s, e in _boxes(f, 0, None) if k == b"moov"), None)
    if moov is None:
        raise ProbeError("video without a moov box")
    children = _boxes(f, *moov)
    mvhd = next(((s, e) for k, s, e in children if k == b"mvhd"), None)
    if mvhd is None:
        raise ProbeError("video without an mvhd box")
    f.seek(mvhd[0])
    duration = mvhd_duration(f.read(min(mvhd[1] - mvhd[0], 32)))
    width = height = None
    for kind, s, e in children:
        if kind != b"trak":
            continue
        tkhd = next(((ts, te) for k, ts, te in _boxes(f, s, e) if k == b"tkhd"), None)
        if tkhd is None:
            continue
        f.seek(tkhd[0])
        size = tkhd_size(f.read(min(tkhd[1] - tkhd[0], 96)))
        if size is not None:
            width, height = size
            break
    return duration, width, height


def mvhd_duration(payload: bytes) -> float:
    """Duration in seconds from an mvhd payload (version 0: 32-bit fields; 1: 64-bit)."""
    if not payload:
        raise ProbeError("empty mvhd box")
    version = payload[0]
    if version == 1 and len(payload) >= 32:
        timescale, duration = struct.unpack(">IQ", payload[20:32])
    elif version == 0 and len(payload) >= 20:
        timescale, duration = struct.unpack(">II", payload[12:20])
    else:
        raise ProbeError("truncated mvhd box")
    if timescale == 0:
        raise ProbeError("mvhd timescale is zero")
    return round(duration / timescale, 3)


def tkhd_size(payload: bytes) -> tuple[int, int] | None:
    """The track's presentation size (16.16 fixed point), or None for non-visual tracks."""
    if not payload:
        return None
    offset = 88 if payload[0] == 1 else 76  # the 64-bit layout has 12 more bytes before it
    if len(payload) < offset + 8:
        return None
    width, height = struct.unpack(">II", payload[offset : offset + 8])
    width, height = width >> 16, height >> 16
    return (width, height) if width and height else None
