"""`/webhooks/{platform}`: what the platforms push (comments, messages, mentions).

Public (the gateway forwards `/webhooks/*` without authenticating the caller): each delivery
is authenticated by the platform's signature over the raw body, checked before anything is
parsed. Answers:

* 200 — verified and recorded (redeliveries included: they are recorded once);
* 202 — verified, but no connected account matches: accepted and dropped, since platforms
  retry errors and would redeliver forever;
* 401 — missing or wrong signature, nothing recorded; 403 — failed subscription handshake;
* 400 — not JSON; 422 — JSON that is not the platform's webhook shape; 413 — too large;
* 404 — a platform that pushes nothing to Chorus (every other platform is polled).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from chorus_connector import webhook_signatures as signatures
from chorus_connector.inbound import InboundService
from chorus_connector.settings import ConnectorSettings
from chorus_connector.webhook_payloads import MalformedPayload, parse
from chorus_contracts.events.common import Platform
from chorus_runtime.errors import (
    ChorusError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    ValidationFailed,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
META = frozenset({Platform.FACEBOOK, Platform.INSTAGRAM, Platform.THREADS})
PUSHING = META | {Platform.X}
MAX_BODY_BYTES = 1024 * 1024  # platform deliveries are a few KB


class WebhookAck(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    received: int
    emitted: int
    duplicates: int
    unmatched: int


def pushing_platform(name: str) -> Platform:
    try:
        platform = Platform(name)
    except ValueError:
        raise NotFound(f"no platform {name!r}") from None
    if platform not in PUSHING:
        raise NotFound(f"{platform.value} sends no webhooks to Chorus (it is polled)")
    return platform


def _settings(request: Request) -> ConnectorSettings:
    return request.app.state.connector_settings  # type: ignore[no-any-return]


def _service(request: Request) -> InboundService:
    return request.app.state.inbound  # type: ignore[no-any-return]


@router.get("/{platform}", response_model=None)
async def verify_subscription(
    platform: str,
    request: Request,
    crc_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Meta's subscription handshake, or X's CRC check."""
    p = pushing_platform(platform)
    settings = _settings(request)
    if p is Platform.X:
        if not crc_token:
            raise ValidationFailed(
                "crc_token is required",
                details=[{"field": "crc_token", "message": "required", "type": "missing"}],
            )
        secret = settings.webhook_secret(p.value)
        if not secret:
            raise Forbidden("webhooks are not configured for x")
        return JSONResponse(signatures.x_crc_response(secret, crc_token))
    q = request.query_params
    challenge = q.get("hub.challenge")
    if not signatures.meta_handshake_valid(
        settings.webhook_verify_token, q.get("hub.mode"), q.get("hub.verify_token"), challenge
    ):
        raise Forbidden("webhook verification failed")
    return PlainTextResponse(challenge or "")


@router.post("/{platform}", response_model=WebhookAck, response_model_by_alias=True)
async def receive(platform: str, request: Request) -> Any:
    p = pushing_platform(platform)
    body = await _read_body(request)
    secret = _settings(request).webhook_secret(p.value)
    if p is Platform.X:
        valid = signatures.x_signature_valid(
            secret, body, request.headers.get(signatures.X_SIGNATURE_HEADER)
        )
    else:
        valid = signatures.meta_signature_valid(
            secret, body, request.headers.get(signatures.META_SIGNATURE_HEADER)
        )
    if not valid:
        raise Unauthorized("missing or invalid webhook signature")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ChorusError(
            "request body is not valid JSON", status_code=400, code="INVALID_JSON"
        ) from None
    try:
        items = parse(p.value, data)
    except MalformedPayload as exc:
        raise ValidationFailed(
            f"not a {p.value} webhook: {exc}",
            details=[{"field": "body", "message": str(exc), "type": "malformed_webhook"}],
        ) from None
    outcome = await _service(request).record(p, items, received_at=datetime.now(UTC))
    ack = WebhookAck(
        received=len(items),
        emitted=outcome.emitted,
        duplicates=outcome.duplicates,
        unmatched=outcome.unmatched,
    )
    status = 202 if items and outcome.unmatched == len(items) else 200
    return JSONResponse(ack.model_dump(by_alias=True), status_code=status)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"webhook bodies are limited to {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"webhook bodies are limited to {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
