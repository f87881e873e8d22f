"""Webhook bodies → the inbound items Chorus cares about (pure: no I/O).

Each platform's documented shape:

* Facebook Pages (`object: page`): `entry[].changes[]` with `field: feed` (`item: comment`,
  `verb: add`) and `field: mention`; `entry[].messaging[]` for Messenger messages.
* Instagram (`object: instagram`): `entry[].changes[]` with `field: comments` and
  `field: mentions`; `entry[].messaging[]` for direct messages.
* Threads: one change per delivery, `{"target_id", "values": {"field": "replies" | "mentions",
  "value": {…}}}`.
* X (Account Activity API): `for_user_id` with `tweet_create_events` (replies to the user are
  comments, other tweets naming the user are mentions) and `direct_message_events`.

The account's own posts, echoes of its own messages, edits, removals, reactions and events
Chorus does not handle yet are skipped, not refused: a platform retries refused deliveries,
and one new kind of change must not block the rest. A body whose structure is wrong is
`MalformedPayload` (answered 422).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from chorus_connector.platforms.base import parse_time


class InboundKind(StrEnum):
    COMMENT = "comment"
    MESSAGE = "message"
    MENTION = "mention"


@dataclass(frozen=True)
class Author:
    id: str
    username: str | None = None
    display_name: str | None = None


@dataclass(frozen=True)
class InboundItem:
    kind: InboundKind
    platform_account_id: str  # whose webhook this is: the connected account on the platform
    platform_event_id: str
    author: Author
    text: str
    occurred_at: datetime | None
    platform_post_id: str | None = None
    parent_id: str | None = None  # comments: the comment answered
    conversation_id: str | None = None  # messages
    url: str | None = None  # mentions


class MalformedPayload(ValueError):
    """The body is JSON but not the platform's webhook shape."""


def parse(platform: str, body: Any) -> list[InboundItem]:
    if not isinstance(body, dict):
        raise MalformedPayload("the body must be a JSON object")
    if platform == "x":
        return parse_x(body)
    if platform == "threads":
        return parse_threads(body)
    return parse_meta(body)


# -- Meta (Facebook Pages, Instagram) ------------------------------------------------------------


def parse_meta(body: dict[str, Any]) -> list[InboundItem]:
    entries = body.get("entry")
    if not isinstance(body.get("object"), str) or not isinstance(entries, list):
        raise MalformedPayload("a Meta webhook carries `object` and an `entry` list")
    items: list[InboundItem] = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("id"):
            raise MalformedPayload("every entry needs an `id`")
        owner = str(entry["id"])
        for change in _dicts(entry.get("changes")):
            item = _meta_change(owner, str(change.get("field") or ""), _dict(change.get("value")))
            if item is not None:
                items.append(item)
        for message in _dicts(entry.get("messaging")):
            item = _meta_message(owner, message)
            if item is not None:
                items.append(item)
    return items


def _meta_change(owner: str, field: str, v: dict[str, Any]) -> InboundItem | None:
    sender = _dict(v.get("from"))
    if field == "feed" and v.get("item") == "comment" and v.get("verb") == "add":
        if not v.get("comment_id") or str(sender.get("id") or "") == owner:
            return None  # the Page's own comment
        return InboundItem(
            InboundKind.COMMENT,
            owner,
            str(v["comment_id"]),
            Author(str(sender.get("id") or ""), None, sender.get("name")),
            str(v.get("message") or ""),
            _epoch(v.get("created_time")),
            platform_post_id=_str(v.get("post_id")),
            parent_id=_parent(v.get("parent_id"), v.get("post_id")),
        )
    if field == "comments" and v.get("id"):  # Instagram
        if str(sender.get("id") or "") == owner:
            return None
        return InboundItem(
            InboundKind.COMMENT,
            owner,
            str(v["id"]),
            Author(str(sender.get("id") or ""), sender.get("username")),
            str(v.get("text") or ""),
            None,
            platform_post_id=_str(_dict(v.get("media")).get("id")),
            parent_id=_str(v.get("parent_id")),
        )
    if field == "mention" and v.get("verb", "add") == "add":  # Facebook Pages
        event_id = v.get("comment_id") or v.get("post_id")
        if not event_id:
            return None
        return InboundItem(
            InboundKind.MENTION,
            owner,
            str(event_id),
            Author(str(v.get("sender_id") or ""), None, v.get("sender_name")),
            str(v.get("message") or ""),
            _epoch(v.get("created_time")),
            platform_post_id=_str(v.get("post_id")),
        )
    if field == "mentions":  # Instagram: ids only, the text is read from the API
        event_id = v.get("comment_id") or v.get("media_id")
        if not event_id:
            return None
        return InboundItem(
            InboundKind.MENTION,
            owner,
            str(event_id),
            Author(str(sender.get("id") or "")),  # Instagram does not say who: read it later
            str(v.get("text") or ""),
            None,
            platform_post_id=_str(v.get("media_id")),
        )
    return None


def _meta_message(owner: str, m: dict[str, Any]) -> InboundItem | None:
    message = _dict(m.get("message"))
    sender = str(_dict(m.get("sender")).get("id") or "")
    if not message.get("mid") or message.get("is_echo") or not sender or sender == owner:
        return None  # receipts, reactions, and the account's own messages
    return InboundItem(
        InboundKind.MESSAGE,
        owner,
        str(message["mid"]),
        Author(sender),
        str(message.get("text") or ""),
        _epoch(m.get("timestamp")),
        conversation_id=sender,  # Messenger and Instagram threads are per sender
    )


# -- Threads -------------------------------------------------------------------------------------


def parse_threads(body: dict[str, Any]) -> list[InboundItem]:
    values = body.get("values")
    if not body.get("target_id") or not isinstance(values, dict):
        raise MalformedPayload("a Threads webhook carries `target_id` and `values`")
    owner = str(body["target_id"])
    v = _dict(values.get("value"))
    field = values.get("field")
    if not v.get("id") or field not in ("replies", "mentions"):
        return []
    root = _dict(v.get("root_post"))
    if str(root.get("owner_id") or "") == owner and v.get("username") == root.get("username"):
        return []  # the account replying in its own thread
    author = Author(str(v.get("owner_id") or v.get("username") or ""), v.get("username"))
    text = str(v.get("text") or "")
    when = parse_time(_meta_time(v.get("timestamp")))
    if field == "replies":
        replied_to = _str(_dict(v.get("replied_to")).get("id"))
        root_id = _str(root.get("id"))
        item = InboundItem(
            InboundKind.COMMENT,
            owner,
            str(v["id"]),
            author,
            text,
            when,
            platform_post_id=root_id or replied_to,
            parent_id=replied_to if replied_to != root_id else None,
        )
    else:
        item = InboundItem(
            InboundKind.MENTION,
            owner,
            str(v["id"]),
            author,
            text,
            when,
            platform_post_id=str(v["id"]),
            url=_str(v.get("permalink")),
        )
    return [item]


# -- X -------------------------------------------------------------------------------------------


def parse_x(body: dict[str, Any]) -> list[InboundItem]:
    owner = body.get("for_user_id")
    if not isinstance(owner, str | int) or not str(owner):
        raise MalformedPayload("an X webhook carries `for_user_id`")
    owner = str(owner)
    for name in ("tweet_create_events", "direct_message_events"):
        if name in body and not isinstance(body[name], list):
            raise MalformedPayload(f"`{name}` must be a list")
    items: list[InboundItem] = []
    for tweet in _dicts(body.get("tweet_create_events")):
        item = _x_tweet(owner, tweet)
        if item is not None:
            items.append(item)
    users = _dict(body.get("users"))
    for event in _dicts(body.get("direct_message_events")):
        item = _x_message(owner, event, users)
        if item is not None:
            items.append(item)
    return items


def _x_tweet(owner: str, t: dict[str, Any]) -> InboundItem | None:
    user = _dict(t.get("user"))
    tweet_id = _str(t.get("id_str") or t.get("id"))
    if not tweet_id or str(user.get("id_str") or user.get("id") or "") == owner:
        return None  # the account's own tweet
    author = Author(
        str(user.get("id_str") or user.get("id") or ""), user.get("screen_name"), user.get("name")
    )
    text = str(_dict(t.get("extended_tweet")).get("full_text") or t.get("text") or "")
    when = _epoch(t.get("timestamp_ms")) or _x_time(t.get("created_at"))
    if str(t.get("in_reply_to_user_id_str") or "") == owner:
        return InboundItem(
            InboundKind.COMMENT,
            owner,
            tweet_id,
            author,
            text,
            when,
            platform_post_id=_str(t.get("in_reply_to_status_id_str")),
        )
    mentioned = {
        str(m.get("id_str") or m.get("id") or "")
        for m in _dicts(_dict(t.get("entities")).get("user_mentions"))
    }
    if owner not in mentioned:
        return None
    url = f"https://x.com/{author.username}/status/{tweet_id}" if author.username else None
    return InboundItem(
        InboundKind.MENTION, owner, tweet_id, author, text, when, platform_post_id=tweet_id, url=url
    )


def _x_message(owner: str, e: dict[str, Any], users: dict[str, Any]) -> InboundItem | None:
    create = _dict(e.get("message_create"))
    sender = str(create.get("sender_id") or "")
    if e.get("type") != "message_create" or not e.get("id") or not sender or sender == owner:
        return None  # the account's own messages come back too
    recipient = str(_dict(create.get("target")).get("recipient_id") or owner)
    user = _dict(users.get(sender))
    return InboundItem(
        InboundKind.MESSAGE,
        owner,
        str(e["id"]),
        Author(sender, user.get("screen_name"), user.get("name")),
        str(_dict(create.get("message_data")).get("text") or ""),
        _epoch(e.get("created_timestamp")),
        conversation_id="-".join(sorted((sender, recipient))),  # X's DM conversation id form
    )


# -- helpers -------------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _parent(parent_id: Any, post_id: Any) -> str | None:
    """Facebook names the post as the parent of a top-level comment: that is no parent."""
    return _str(parent_id) if parent_id and parent_id != post_id else None


def _epoch(value: Any) -> datetime | None:
    """Epoch seconds or milliseconds (as a number or a string)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number > 1e11:  # milliseconds
        number /= 1000
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _meta_time(value: Any) -> str | None:
    """`2024-08-09T18:07:57+0000` → ISO 8601 with a colon in the offset."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) >= 5 and value[-5] in "+-" and value[-4:].isdigit():
        return f"{value[:-2]}:{value[-2:]}"
    return value


def _x_time(value: Any) -> datetime | None:
    """X's v1.1 `created_at`: `Wed Oct 10 20:19:24 +0000 2018`."""
    try:
        return datetime.strptime(str(value), "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        return None
