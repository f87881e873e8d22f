"""What a file is, from its own bytes (unit): magic-byte sniffing, image headers, and the
MP4/QuickTime duration from moov/mvhd (also when moov comes after the media data)."""

from __future__ import annotations

import io

import pytest

from chorus_publishing import media_probe
from chorus_publishing.media_probe import ProbeError, probe, sniff
from chorus_testing.media_files import box, gif, jpeg, mp4, png, webp_vp8x

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(2, 2), "image/png"),
        (jpeg(2, 2), "image/jpeg"),
        (gif(2, 2), "image/gif"),
        (webp_vp8x(2, 2), "image/webp"),
        (mp4(1), "video/mp4"),
        (mp4(1, brand=b"qt  "), "video/quicktime"),
        (mp4(1, brand=b"heic"), None),  # a HEIF image in an ISO-BMFF box
        (mp4(1, brand=b"M4A "), None),  # audio only
        (b"%PDF-1.7\n", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"", None),
    ],
)
def test_sniff_reads_the_type_from_magic_bytes(data: bytes, expected: str | None) -> None:
    assert sniff(data[: media_probe.SNIFF_BYTES]) == expected


@pytest.mark.parametrize(
    ("data", "mime", "size"),
    [
        (png(640, 480), "image/png", (640, 480)),
        (gif(320, 200), "image/gif", (320, 200)),
        (webp_vp8x(1080, 1350), "image/webp", (1080, 1350)),
        (jpeg(1920, 1080), "image/jpeg", (1920, 1080)),
        # The frame header after a large EXIF segment: found by skipping, not by scanning.
        (jpeg(4032, 3024, exif_bytes=60_000), "image/jpeg", (4032, 3024)),
    ],
)
def test_image_dimensions_come_from_the_headers(
    data: bytes, mime: str, size: tuple[int, int]
) -> None:
    found = probe(io.BytesIO(data), mime)
    assert (found.width, found.height) == size
    assert found.duration_seconds is None
    assert found.kind == ("gif" if mime == "image/gif" else "image")


def test_webp_lossy_and_lossless_headers() -> None:
    vp8 = b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00" + b"\x00\x00\x00\x9d\x01\x2a"
    vp8 += (800).to_bytes(2, "little") + (600).to_bytes(2, "little")
    assert media_probe.image_size(io.BytesIO(vp8), "image/webp") == (800, 600)
    bits = (99) | (49 << 14)  # width-1, height-1 in 14-bit fields
    vp8l = b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + bits.to_bytes(4, "little")
    assert media_probe.image_size(io.BytesIO(vp8l), "image/webp") == (100, 50)


@pytest.mark.parametrize("version", [0, 1])
def test_mp4_duration_from_mvhd_and_size_from_tkhd(version: int) -> None:
    found = probe(io.BytesIO(mp4(12.5, width=1080, height=1920, version=version)), "video/mp4")
    assert found.kind == "video"
    assert found.duration_seconds == 12.5
    assert (found.width, found.height) == (1080, 1920)


def test_mp4_moov_after_mdat_is_found_by_seeking() -> None:
    data = mp4(61.25, moov_last=True, mdat_bytes=200_000)
    assert media_probe.mp4_info(io.BytesIO(data)) == (61.25, 1280, 720)


def test_a_64_bit_box_size_is_followed() -> None:
    full = mp4(3)
    ftyp_end = int.from_bytes(full[:4], "big")
    payload = b"\x00" * 32
    large = b"\x00\x00\x00\x01free" + (16 + len(payload)).to_bytes(8, "big") + payload
    data = full[:ftyp_end] + large + full[ftyp_end:]
    assert media_probe.mp4_info(io.BytesIO(data))[0] == 3.0


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 4, "image/png"),  # no IHDR
        (png(0, 5), "image/png"),  # zero width
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),  # ends before a frame header
        (b"\xff\xd8\xff\xe0\x00\x01", "image/jpeg"),  # impossible segment length
        (b"RIFF\x00\x00\x00\x00WEBPVP8Q", "image/webp"),
        (box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"mdat", b"\x00" * 8), "video/mp4"),
        (box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"moov", b""), "video/mp4"),  # no mvhd
        (box(b"ftyp", b"isom")[:-2] + b"\xff\xff\xff\xffmoov", "video/mp4"),  # box past EOF
    ],
)
def test_unreadable_headers_raise_probe_error(data: bytes, mime: str) -> None:
    with pytest.raises(ProbeError):
        probe(io.BytesIO(data), mime)


def test_mvhd_with_a_zero_timescale_is_refused() -> None:
    with pytest.raises(ProbeError):
        media_probe.mvhd_duration(b"\x00\x00\x00\x00" + b"\x00" * 16)
