"""Receive one uploaded file from a multipart body, streamed to a staging file in chunks.

Nothing is held whole in memory: the body is parsed as it arrives, the file part is written
to disk a chunk at a time while its SHA-256 is computed, its type is decided from its first
bytes (the part's Content-Type is only checked against them), and the size limit for that
type stops the upload as soon as it is crossed (413).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from chorus_publishing import media_probe
from chorus_runtime.errors import ChorusError, PayloadTooLarge, ValidationFailed

FILE_FIELD = "file"
FLUSH_BYTES = 1024 * 1024
MAX_OTHER_BYTES = 64 * 1024  # form fields besides the file are not used; keep them small
ENVELOPE_SLACK = 64 * 1024  # boundaries and part headers around the file
# Client labels that name no type, and labels that name the same container as the bytes.
_NO_CLAIM = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "video/mov": "video/quicktime"}
_SAME_CONTAINER = frozenset({"video/mp4", "video/quicktime"})  # both ISO-BMFF; browsers guess


class UnsupportedMediaType(ChorusError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


@dataclass(frozen=True)
class Limits:
    image_bytes: int
    video_bytes: int

    def for_type(self, mime_type: str) -> int:
        return self.video_bytes if mime_type in media_probe.VIDEO_TYPES else self.image_bytes

    @property
    def largest(self) -> int:
        return max(self.image_bytes, self.video_bytes)


@dataclass(frozen=True)
class Staged:
    path: Path
    size: int
    sha256: str
    mime_type: str
    filename: str | None


def _invalid(message: str, rule: str, **extra: object) -> ValidationFailed:
    return ValidationFailed(
        message, details=[{"field": FILE_FIELD, "rule": rule, "message": message, **extra}]
    )


def too_large(limit: int, mime_type: str | None = None) -> PayloadTooLarge:
    what = f"a {mime_type} file" if mime_type else "the upload"
    return PayloadTooLarge(
        f"{what} may be at most {limit} bytes",
        details={"field": FILE_FIELD, "limitBytes": limit, "mimeType": mime_type},
    )


def check_declared(declared: str | None, detected: str) -> None:
    """The part's Content-Type, when it names a type, must agree with the bytes."""
    claim = (declared or "").split(";", 1)[0].strip().lower()
    claim = _ALIASES.get(claim, claim)
    if claim in _NO_CLAIM or claim == detected:
        return
    if claim in _SAME_CONTAINER and detected in _SAME_CONTAINER:
        return
    raise _invalid(
        f"the file is {detected}, not {claim} as declared",
        "type_mismatch",
        declared=claim,
        detected=detected,
    )


class _Receiver:
    """multipart callbacks → one staged file (sync parts; the caller flushes to disk)."""

    def __init__(self, staging: Path, limits: Limits) -> None:
        self.staging = staging
        self.limits = limits
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.file_seen = False
        self.file_done = False
        self.filename: str | None = None
        self.declared: str | None = None
        self.mime_type: str | None = None
        self.head = bytearray()  # the first bytes, until the type is known
        self.pending = bytearray()  # bytes not yet written
        self.size = 0
        self.other = 0
        self.sha = hashlib.sha256()
        self.path: Path | None = None
        self.file: IO[bytes] | None = None

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.headers = {}
        self.header_field.clear()
        self.header_value.clear()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def _header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.in_file = name == FILE_FIELD
        if not self.in_file:
            return
        if self.file_seen:
            raise _invalid("send exactly one file", "single_file")
        self.file_seen = True
        raw = options.get(b"filename")
        self.filename = raw.decode("utf-8", "replace") if raw is not None else None
        ctype = self.headers.get(b"content-type")
        self.declared = ctype.decode("latin-1") if ctype is not None else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self.in_file:
            self.other += len(chunk)
            if self.other > MAX_OTHER_BYTES:
                raise too_large(MAX_OTHER_BYTES)
            return
        self.size += len(chunk)
        if self.mime_type is None:
            self.head += chunk
            if len(self.head) >= media_probe.SNIFF_BYTES:
                self._decide()
            elif self.size > self.limits.largest:
                raise too_large(self.limits.largest)
        else:
            self._check_size()
        self.pending += chunk

    def _part_end(self) -> None:
        if self.in_file:
            if self.mime_type is None:
                self._decide()
            self.in_file = False
            self.file_done = True

    def _decide(self) -> None:
        if not self.head:
            raise _invalid("the file is empty", "empty")
        detected = media_probe.sniff(bytes(self.head[: media_probe.SNIFF_BYTES]))
        if detected is None:
            raise _invalid(
                "unsupported file type (its bytes are not "
                + ", ".join(media_probe.ALLOWED_TYPES)
                + ")",
                "unsupported_type",
                allowed=list(media_probe.ALLOWED_TYPES),
            )
        check_declared(self.declared, detected)
        self.mime_type = detected
        self.head.clear()
        self._check_size()

    def _check_size(self) -> None:
        assert self.mime_type is not None
        limit = self.limits.for_type(self.mime_type)
        if self.size > limit:
            raise too_large(limit, self.mime_type)

    async def flush(self, *, final: bool = False) -> None:
        if not self.pending or (len(self.pending) < FLUSH_BYTES and not final):
            return
        data = bytes(self.pending)
        self.pending.clear()
        if self.file is None:
            self.path = self.staging / f"{uuid.uuid4()}.part"
            self.file = await asyncio.to_thread(_open_staging, self.path)
        self.sha.update(data)
        await asyncio.to_thread(self.file.write, data)

    async def close(self) -> None:
        if self.file is not None:
            await asyncio.to_thread(self.file.close)
            self.file = None

    async def discard(self) -> None:
        await self.close()
        if self.path is not None:
            await asyncio.to_thread(self.path.unlink, missing_ok=True)


def _open_staging(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


async def receive(
    stream: AsyncIterator[bytes], content_type: str | None, content_length: str | None, *,
    staging: Path, limits: Limits,
) -> Staged:  # fmt: skip
    """Stage the `file` part of a multipart/form-data body; 4xx for anything else."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(
            "upload the file as multipart/form-data in a field named 'file'",
            details={"contentType": content_type},
        )
    declared = int(content_length) if content_length and content_length.isdigit() else 0
    if declared > limits.largest + ENVELOPE_SLACK:
        raise too_large(limits.largest)  # refuse before reading anything
    receiver = _Receiver(staging, limits)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        async for chunk in stream:
            parser.write(chunk)
            await receiver.flush()
        parser.finalize()
        if not receiver.file_done:
            raise ValidationFailed(
                "a file is required",
                details=[
                    {"field": FILE_FIELD, "rule": "required", "message": "a file is required"}
                ],
            )
        await receiver.flush(final=True)
        await receiver.close()
    except FormParserError as exc:
        await receiver.discard()
        raise ValidationFailed(
            "malformed multipart body", details=[{"field": FILE_FIELD, "message": str(exc)}]
        ) from None
    except BaseException:
        await receiver.discard()
        raise
    assert receiver.path is not None and receiver.mime_type is not None
    return Staged(
        path=receiver.path,
        size=receiver.size,
        sha256=receiver.sha.hexdigest(),
        mime_type=receiver.mime_type,
        filename=receiver.filename,
    )
