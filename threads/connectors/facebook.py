"""Facebook pages connector: Messenger conversations and post comments of a connected page, over the Graph API
(facebook-sdk's ``GraphAPI`` on ``requests``), plus Meta's webhook events (threads.api.meta_webhook).

Account: ChannelAccount kind ``facebook``; ``config`` ``{"page_id": …, "page_name": …}`` and optionally
``backfill_days`` (how far back the first sync reads Messenger, default 30) and ``comment_window_days`` (which posts
are watched for comments, default 30); ``credentials`` ``{"page_access_token": …}`` and optionally ``app_secret``
(else ``FACEBOOK_APP_SECRET``). Every Graph call carries ``appsecret_proof`` (HMAC-SHA256 of the page token keyed
with the app secret), which facebook-sdk does not send by itself.

Raw events (one per item, whichever way it arrived; a pull and a webhook delivery of the same item share the
provider event id, so the second stores nothing):

- ``facebook.message``: a Messenger message; provider event id = the message id (``m_…``), the same in the
  Conversations API, the webhook's ``message.mid`` and the Send API's ``message_id``.
- ``facebook.comment``: a comment on a page post; provider event id = the comment id (``<post>_<comment>``);
  a removal is ``<comment id>:remove`` and an edit ``<comment id>:edited:<time>``.

Thread keys: Messenger ``facebook:psid:<page id>:<PSID>`` (webhook events carry the PSIDs, not the conversation
id, so both paths key by the person), comments ``facebook:post:<post id>``. Messages and comments keep the default
global key ``facebook:<id>``, which is also what ``message_deliver`` gives a reply once Facebook names it, so a
reply seen again in a pull or a webhook echo is the same message.

Cursor (``account.cursor``), committed with (or after) the messages it covers, never before:

- ``messenger``: ``watermark`` (the conversation list is read down to it, newest first), ``read`` (conversation id →
  the ``updated_time`` it was last read at: its messages are read back to there, and an unchanged conversation is
  not read again) and, while a pass runs, ``pass_high`` (the newest ``updated_time`` read so far). The watermark
  moves only when a pass finishes, so a pass cut short by a rate limit resumes without skipping the conversations
  it had not reached. ``read`` keeps only conversations active within ``backfill_days``: older ones have nothing
  newer to read than that window.
- ``comments``: ``posts``: post id → ``{"updated", "count", "created"}``, the post's ``updated_time`` and comment
  count when its comments were last read in full; posts leave the map when they leave the window.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import facebook
import requests
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from crm.errors import DomainError
from threads.connectors import (
    AttachmentIn,
    ChannelAuthError,
    ChannelRateLimited,
    ChannelUnavailable,
    ConnectorError,
    DeliveryRefused,
    NormalizedMessage,
    NormalizeError,
    OutgoingDraft,
    Party,
    PostPage,
    PublicPost,
    RawEventIn,
    SendResult,
    credentials_of,
    register_connection_test,
    register_normalizer,
    register_poller,
    register_post_fetcher,
    register_sender,
)
from threads.models import Channel, ChannelAccount, Direction, Message

if TYPE_CHECKING:
    from threads.models import RawEvent, Thread

log = logging.getLogger(__name__)

MESSAGE_EVENT = "facebook.message"
COMMENT_EVENT = "facebook.comment"
GRAPH_HOST = "graph.facebook.com"
TIMEOUT = 30  # seconds per Graph call: a hung connection fails the poll instead of holding the worker
PENDING_PREFIX = "pending:"  # external id of a reply until Facebook names it

CONVERSATION_FIELDS = "id,updated_time,participants,link"
MESSAGE_FIELDS = "id,created_time,from,to,message,attachments"
POST_FIELDS = "id,created_time,updated_time,permalink_url,comments.filter(stream).limit(0).summary(true)"
COMMENT_FIELDS = "id,from,message,created_time,parent,is_hidden,permalink_url"
FEED_FIELDS = "id,message,created_time,from,permalink_url,place"
FEED_COMMENT_FIELDS = "comments.limit(50){id,message,created_time,from,permalink_url}"

DEFAULT_BACKFILL_DAYS = 30
DEFAULT_COMMENT_WINDOW_DAYS = 30
LISTENING_BACKFILL_DAYS = 7
FEED_PAGES_PER_FETCH = 5  # a listening fetch stops here and asks to be called again (``more``)
DELETION_GRACE = dt.timedelta(minutes=10)  # a comment this fresh may not be in Facebook's answer yet
MESSENGER_MAX_CHARS = 2000  # Send API limit for message.text
COMMENT_MAX_CHARS = 8000

# Graph error codes (https://developers.facebook.com/docs/graph-api/guides/error-handling).
AUTH_CODES = {102, 190}  # session or access token invalid, expired or revoked
# 4 app, 17 user, 32 page, 613 custom-level rate limits; 80001-80014 business use case (pages, Messenger …) limits.
RATE_LIMIT_CODES = {4, 17, 32, 613, *range(80001, 80015)}
UNAVAILABLE_CODES = {1, 2}  # unknown error, service temporarily unavailable
DEFAULT_RATE_LIMIT_WAIT = 15 * 60  # seconds, when no usage header says how long
USAGE_HEADERS = ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage")


# --- Account settings ------------------------------------------------------------------------------------------


def page_id_of(account: ChannelAccount) -> str:
    """The page's numeric id (``config["page_id"]``; older accounts may carry it as ``address``)."""
    return str((account.config or {}).get("page_id") or account.address or "").strip()


def app_secret_of(account: ChannelAccount) -> str:
    """The secret of the Meta app this page is connected through: the account's own, else the server's."""
    try:
        creds = credentials_of(account)
    except ChannelAuthError:
        creds = {}
    return str(creds.get("app_secret") or settings.FACEBOOK_APP_SECRET or "")


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """Meta's proof that a call comes from the app's server: hex HMAC-SHA256 of the token keyed with the secret."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def graph_version() -> str:
    version = str(settings.FACEBOOK_GRAPH_VERSION).strip()
    return version if version.startswith("v") else f"v{version}"


# --- Graph client ----------------------------------------------------------------------------------------------


def _usage_wait(response: requests.Response | None) -> float | None:
    """Seconds until Meta lets us back in, from ``estimated_time_to_regain_access`` (minutes) in any usage header."""
    if response is None:
        return None
    minutes: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            wait = value.get("estimated_time_to_regain_access")
            if isinstance(wait, int | float) and not isinstance(wait, bool):
                minutes.append(float(wait))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for header in USAGE_HEADERS:
        raw = response.headers.get(header)
        if not raw:
            continue
        try:
            walk(json.loads(raw))
        except ValueError:
            continue
    longest = max(minutes, default=0.0)
    return longest * 60 if longest > 0 else None


def _endpoint(path: str) -> str:
    """A rate-limit bucket name for a Graph path: its last segment that is not a version or an id."""
    segments = [p for p in path.split("?")[0].split("/") if p]
    if segments and re.fullmatch(r"v\d+\.\d+", segments[0]):
        segments = segments[1:]
    names = [p for p in segments if not p.replace("_", "").isdigit()]
    return "facebook:" + (names[-1] if names else "object")


class GraphClient:
    """facebook-sdk's GraphAPI for one page, with appsecret_proof on every call and Graph errors mapped onto the
    connector errors. The SDK drops the HTTP status and headers, so a response hook keeps the last response: the
    status tells a 429 or 5xx apart, the usage headers say how long a rate limit lasts."""

    def __init__(self, account: ChannelAccount) -> None:
        self.account_name = account.name
        self.page_id = page_id_of(account)
        if not self.page_id:
            raise ConnectorError(f"{account.name} has no page id: set config.page_id to the page's numeric id.")
        creds = credentials_of(account)
        token = str(creds.get("page_access_token") or "")
        if not token:
            raise ChannelAuthError(f"{account.name} has no page access token: connect the page again.")
        secret = str(creds.get("app_secret") or settings.FACEBOOK_APP_SECRET or "")
        if not secret:
            raise ConnectorError(
                f"No Meta app secret for {account.name}: set FACEBOOK_APP_SECRET (or the page's app_secret)."
            )
        self.proof = appsecret_proof(token, secret)
        self.last_response: requests.Response | None = None
        session = requests.Session()
        session.hooks["response"].append(self._remember)
        # facebook-sdk 3.1.0 refuses any version after 3.1 in its constructor; after construction ``version`` is only
        # the URL prefix, so a current version is set there.
        self.graph = facebook.GraphAPI(access_token=token, timeout=TIMEOUT, session=session)
        self.graph.version = graph_version()

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.last_response = response

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._call(f"{self.graph.version}/{path}", args=params)

    def post(self, path: str, **data: Any) -> dict[str, Any]:
        return self._call(f"{self.graph.version}/{path}", post_args=data)

    def follow(self, next_url: str) -> dict[str, Any]:
        """The page ``paging.next`` points at. Only Graph API URLs: our token never goes anywhere else."""
        parts = urlsplit(next_url)
        if parts.scheme != "https" or parts.hostname != GRAPH_HOST:
            raise ConnectorError(f"Facebook returned a paging link to an unexpected place: {parts.hostname!r}.")
        params = {
            key: values[-1]
            for key, values in parse_qs(parts.query, keep_blank_values=True).items()
            if key not in ("access_token", "appsecret_proof")
        }
        return self._call(parts.path.lstrip("/"), args=params)

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Each page of a paginated edge, following ``paging.next`` until there is none."""
        page = self.get(path, **params)
        while True:
            yield page
            next_url = (page.get("paging") or {}).get("next") if isinstance(page.get("paging"), dict) else None
            if not next_url or not page.get("data"):
                return
            page = self.follow(str(next_url))

    def _call(
        self, path: str, *, args: dict[str, Any] | None = None, post_args: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self.last_response = None
        posting = post_args is not None
        if post_args is not None:
            post_args = {**post_args, "appsecret_proof": self.proof}
        else:
            args = {**(args or {}), "appsecret_proof": self.proof}
        try:
            result = self.graph.request(path, args=args, post_args=post_args)
        except facebook.GraphAPIError as exc:
            raise self._error(path, exc, posting=posting) from exc
        except requests.JSONDecodeError as exc:  # a body that claims JSON and is not (an outage page)
            raise self._error(path, None, f"unreadable answer ({exc})", posting=posting) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ChannelUnavailable(f"Cannot reach the Facebook Graph API: {exc or type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise ChannelUnavailable(f"The Facebook Graph API call failed: {exc}") from exc
        except KeyError as exc:  # facebook-sdk reads Content-Type unconditionally
            raise self._error(path, None, f"answer without {exc}", posting=posting) from exc
        status = self.last_response.status_code if self.last_response is not None else 200
        if status >= 400:
            raise self._error(path, None, f"HTTP {status}", posting=posting)
        if not isinstance(result, dict):
            raise ConnectorError(f"Facebook answered {path} with something unexpected: {str(result)[:200]}")
        return result

    def _error(
        self, path: str, exc: facebook.GraphAPIError | None, detail: str = "", *, posting: bool = False
    ) -> ConnectorError:
        response = self.last_response
        status = response.status_code if response is not None else 0
        body = exc.result if exc is not None and isinstance(exc.result, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int) else None
        text = str(error.get("message") or detail or (exc and exc.message) or f"HTTP {status}")
        facts = ", ".join(
            f"{name} {value}"
            for name, value in (("code", code), ("subcode", error.get("error_subcode")),
                                ("HTTP", status or None), ("fbtrace_id", error.get("fbtrace_id")))
            if value
        )  # fmt: skip
        said = f"{text} ({facts})" if facts else text
        name = self.account_name
        if code in AUTH_CODES:
            return ChannelAuthError(
                f"Facebook refused the page access token of {name}: {said}. Connect the page again for a new token."
            )
        if status == 429 or code in RATE_LIMIT_CODES:
            wait = _usage_wait(response) or DEFAULT_RATE_LIMIT_WAIT
            return ChannelRateLimited(
                f"Facebook rate-limited {name}; trying again in {round(wait / 60)} min: {said}",
                retry_after=wait, endpoint=_endpoint(path),
            )  # fmt: skip
        if status >= 500 or code in UNAVAILABLE_CODES or error.get("is_transient") is True:
            return ChannelUnavailable(f"Facebook is unavailable for {name}: {said}")
        if exc is None and not status:
            return ChannelUnavailable(f"Facebook gave no readable answer for {name}: {said}")
        if posting:
            # A send Facebook refuses for good (outside the 24-hour window, the comment is gone, the person cannot
            # be reached): retrying would be refused again, so the message fails at once.
            return DeliveryRefused(f"Facebook refused to deliver this message from {name}: {said}")
        return ConnectorError(f"Facebook refused a request of {name}: {said}")


# --- Reading Graph and webhook values --------------------------------------------------------------------------


def _time(value: Any, what: str) -> dt.datetime:
    """Graph's "2026-03-01T10:15:00+0000", webhook unix seconds or milliseconds, as an aware datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise NormalizeError(f"{what} has an impossible time: {value!r}") from None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return _time(int(text), what)
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise NormalizeError(f"{what} has an unreadable time: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise NormalizeError(f"{what} has no time.")


def parse_time(value: Any) -> dt.datetime:
    """A Graph or webhook time as an aware datetime; NormalizeError when it cannot be read."""
    return _time(value, "value")


def _time_or_none(value: Any) -> dt.datetime | None:
    try:
        return _time(value, "value")
    except NormalizeError:
        return None


def _person(value: Any) -> tuple[str, str]:
    """(id, name) of a Graph or webhook ``from``/``sender``; ("", "") when absent."""
    if not isinstance(value, dict):
        return "", ""
    return str(value.get("id") or "").strip(), str(value.get("name") or "").strip()


def _load(event: RawEvent) -> dict[str, Any]:
    try:
        data = json.loads(bytes(event.payload))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NormalizeError(f"Facebook event is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NormalizeError("Facebook event is not a JSON object.")
    return data


def _payload(data: dict[str, Any]) -> bytes:
    # ensure_ascii=False keeps emoji and right-to-left text as the UTF-8 Facebook sent.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _graph_attachments(value: Any) -> list[dict[str, Any]]:
    items = value.get("data") if isinstance(value, dict) else value
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        image = item.get("image_data") if isinstance(item.get("image_data"), dict) else {}
        video = item.get("video_data") if isinstance(item.get("video_data"), dict) else {}
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}  # webhook shape
        url = item.get("file_url") or image.get("url") or video.get("url") or payload.get("url") or ""
        kind = str(item.get("mime_type") or item.get("type") or "application/octet-stream")
        if "/" not in kind:
            kind = {"image": "image/*", "video": "video/*", "audio": "audio/*"}.get(kind, "application/octet-stream")
        size = item.get("size") if isinstance(item.get("size"), int) else 0
        name = str(item.get("name") or item.get("title") or (str(url).split("?")[0].rsplit("/", 1)[-1]) or "attachment")
        entry = {"name": name[:255], "type": kind, "url": str(url), "size": size}
        if payload.get("sticker_id"):
            entry["sticker_id"] = str(payload["sticker_id"])
        out.append(entry)
    return out


def _attachments_in(found: list[dict[str, Any]]) -> list[AttachmentIn]:
    # Facebook's attachment URLs are signed and expire: the pipeline keeps the name, type and link, not the bytes.
    return [
        AttachmentIn(a["name"], a["type"], None, a["size"], omitted="Kept on Facebook; the link is in the message.")
        for a in found
    ]


def _in_flight(account: ChannelAccount, page_id: str, *, target: str, key: str, text: str, metadata: str = "") -> bool:
    """Is this page-authored item a reply Threadline is delivering right now?

    ``message_deliver`` stores Facebook's id on the reply only after the Send API answers, in the transaction that
    holds the reply. An echo or a pull that reads the item before that commit would store it a second time under
    its real id. While the reply is still queued under its placeholder id the item is ignored here; the reply gets
    the real id when its delivery commits (and a later replay dedupes against it). Any account of the same page
    counts: a page connected twice sees the other account's replies come back too."""
    queued = Message.objects.filter(
        Q(channel_account=account) | Q(meta__draft__page_id=page_id), channel=Channel.FACEBOOK,
        direction=Direction.OUTBOUND, delivery=Message.Delivery.QUEUED,
    )  # fmt: skip
    if metadata.startswith(PENDING_PREFIX):
        return queued.filter(external_id=metadata).exists()
    if target == "messenger":
        return queued.filter(meta__draft__fb_target="messenger", meta__draft__psid=key, body_text=text).exists()
    return queued.filter(meta__draft__fb_target="comment", meta__draft__comment_id=key, body_text=text).exists()


# --- Normalizers -----------------------------------------------------------------------------------------------


def normalize_message_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    """A Messenger message from the Conversations API or a webhook ``messaging`` event."""
    data = _load(event)
    page_id = str(data.get("page_id") or page_id_of(account))
    if not page_id:
        raise NormalizeError("Facebook message without the page it belongs to.")
    page_name = str((account.config or {}).get("page_name") or account.name)
    source = data.get("source")
    if source == "graph":
        item = data.get("message")
        if not isinstance(item, dict):
            raise NormalizeError("Facebook message event without a message.")
        mid = str(item.get("id") or "").strip()
        sender_id, sender_name = _person(item.get("from"))
        recipients = (item.get("to") or {}).get("data") if isinstance(item.get("to"), dict) else None
        others = [_person(p) for p in recipients or [] if isinstance(p, dict)]
        others += [_person(p) for p in data.get("participants") or [] if isinstance(p, dict)]
        sent_at = _time(item.get("created_time"), f"Facebook message {mid}")
        text = item.get("message") if isinstance(item.get("message"), str) else ""
        attachments = _graph_attachments(item.get("attachments"))
        metadata = ""
        deleted = False
        meta: dict[str, Any] = {"conversation_id": str(data.get("conversation_id") or "")}
    elif source == "webhook":
        messaging = data.get("messaging")
        if not isinstance(messaging, dict):
            raise NormalizeError("Facebook webhook event without a messaging object.")
        sender_id, sender_name = _person(messaging.get("sender"))
        recipient_id, _ = _person(messaging.get("recipient"))
        others = [(recipient_id, "")]
        sent_at = _time(messaging.get("timestamp"), "Facebook webhook message")
        message, postback = messaging.get("message"), messaging.get("postback")
        meta = {}
        if isinstance(message, dict):
            mid = str(message.get("mid") or "").strip()
            text = message.get("text") if isinstance(message.get("text"), str) else ""
            attachments = _graph_attachments(message.get("attachments"))
            metadata = str(message.get("metadata") or "")
            deleted = bool(message.get("is_deleted"))
            if message.get("is_echo"):
                sender_id = sender_id or page_id
            if isinstance(message.get("quick_reply"), dict):
                meta["quick_reply"] = message["quick_reply"].get("payload")
        elif isinstance(postback, dict):
            # A button the person tapped: its title is what they "said".
            mid = str(postback.get("mid") or f"postback:{sender_id}:{messaging.get('timestamp')}")
            text = str(postback.get("title") or postback.get("payload") or "")
            attachments, metadata, deleted = [], "", False
            meta["postback_payload"] = postback.get("payload")
        else:
            return []  # a read receipt, delivery or reaction: nothing a person wrote
    else:
        raise NormalizeError(f"Facebook message event of unknown source {source!r}.")
    if not mid:
        raise NormalizeError("Facebook message without an id.")
    if not sender_id:
        raise NormalizeError(f"Facebook message {mid} has no sender.")
    outbound = sender_id == page_id
    if outbound:
        psid, name = next(((i, n) for i, n in others if i and i != page_id), ("", ""))
    else:
        psid, name = sender_id, sender_name or next((n for i, n in others if i == sender_id and n), "")
    if not psid:
        raise NormalizeError(f"Facebook message {mid} does not say who the customer is.")
    if outbound and _in_flight(account, page_id, target="messenger", key=psid, text=text, metadata=metadata):
        return []
    customer = Party("facebook", psid, name, "to" if outbound else "from")
    page = Party("facebook", page_id, sender_name if outbound and sender_name else page_name, "from")
    return [
        NormalizedMessage(
            channel=Channel.FACEBOOK, direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
            external_id=mid, sent_at=sent_at, provider_thread_key=f"facebook:psid:{page_id}:{psid}",
            author=page if outbound else customer, counterparts=[customer], body_text=text, body_display=text,
            attachments=_attachments_in(attachments), deleted=deleted,
            meta={"fb_kind": "message", "page_id": page_id, "psid": psid,
                  **({"attachments": attachments} if attachments else {}), **{k: v for k, v in meta.items() if v}},
        )
    ]  # fmt: skip


def normalize_comment_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    """A comment on a page post: from the Graph API, a webhook ``feed`` change, or a removal a pull noticed."""
    data = _load(event)
    page_id = str(data.get("page_id") or page_id_of(account))
    if not page_id:
        raise NormalizeError("Facebook comment without the page it belongs to.")
    page_name = str((account.config or {}).get("page_name") or account.name)
    source = data.get("source")
    parent_from: Any = None
    meta: dict[str, Any] = {}
    if source in ("graph", "pull"):
        item = data.get("comment")
        if not isinstance(item, dict):
            raise NormalizeError("Facebook comment event without a comment.")
        comment_id = str(item.get("id") or "").strip()
        post_id = str(data.get("post_id") or "")
        author_id, author_name = _person(item.get("from"))
        text = item.get("message") if isinstance(item.get("message"), str) else ""
        created = item.get("created_time")
        parent = item.get("parent") if isinstance(item.get("parent"), dict) else {}
        parent_id = str(parent.get("id") or "")
        parent_from = parent.get("from")
        deleted = bool(data.get("deleted"))
        edited = False
        if item.get("permalink_url"):
            meta["permalink_url"] = str(item["permalink_url"])
        if item.get("is_hidden") is True:
            meta["is_hidden"] = True
        if deleted:
            meta["deleted_reason"] = str(data.get("reason") or "")
    elif source == "webhook":
        change = data.get("change")
        if not isinstance(change, dict):
            raise NormalizeError("Facebook feed event without a change.")
        if change.get("item") != "comment":
            return []
        verb = str(change.get("verb") or "add")
        comment_id = str(change.get("comment_id") or "").strip()
        post_id = str(change.get("post_id") or "")
        author_id, author_name = _person(change.get("from"))
        text = change.get("message") if isinstance(change.get("message"), str) else ""
        created = change.get("created_time") or data.get("entry_time")
        parent_id = str(change.get("parent_id") or "")
        deleted = verb == "remove"
        edited = verb in ("edited", "edit")
        if verb not in ("add", "edited", "edit", "remove"):
            return []  # hide / unhide: the comment itself is unchanged
        if change.get("permalink_url"):
            meta["permalink_url"] = str(change["permalink_url"])
    else:
        raise NormalizeError(f"Facebook comment event of unknown source {source!r}.")
    if not comment_id:
        raise NormalizeError("Facebook comment without an id.")
    if not post_id:
        # A page post's comment id is "<post object id>_<comment>" and the post id "<page id>_<post object id>".
        post_id = f"{page_id}_{comment_id.split('_')[0]}" if "_" in comment_id else ""
    if not post_id:
        raise NormalizeError(f"Facebook comment {comment_id} does not say which post it is on.")
    if parent_id in (post_id, post_id.split("_")[-1]):
        parent_id = ""  # the webhook names the post as the parent of a top-level comment
    # A removal may come without a time; the stored comment keeps its own.
    sent_at = event.received_at if created is None and deleted else _time(created, f"Facebook comment {comment_id}")
    outbound = bool(author_id) and author_id == page_id
    page = Party("facebook", page_id, author_name or page_name, "from")
    if outbound:
        if not deleted and _in_flight(account, page_id, target="comment", key=parent_id or comment_id, text=text):
            return []
        whom = _comment_counterpart(page_id, parent_id, parent_from)
        if whom is None and not (deleted and Message.objects.filter(global_key=f"facebook:{comment_id}").exists()):
            # The page commenting on its own post (or under its own comment), not answering anyone: no
            # conversation. A removal still marks such a comment if one was stored.
            return []
        counterparts: list[Party] = [whom] if whom else []
        author = page
    else:
        author = Party("facebook", author_id, author_name, "from") if author_id else None
        counterparts = [author] if author else []
    return [
        NormalizedMessage(
            channel=Channel.FACEBOOK, direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
            external_id=comment_id, sent_at=sent_at, provider_thread_key=f"facebook:post:{post_id}",
            author=author, counterparts=counterparts, body_text=text, body_display=text, deleted=deleted, edited=edited,
            meta={"fb_kind": "comment", "page_id": page_id, "post_id": post_id,
                  **({"parent_comment_id": parent_id} if parent_id else {}), **({"edited": True} if edited else {}),
                  **meta},
        )
    ]  # fmt: skip


def _comment_counterpart(page_id: str, parent_id: str, parent_from: Any) -> Party | None:
    """Whom the page answers with a comment reply: the parent comment's author (in the Graph answer, else the
    parent comment as stored). Never the page itself."""
    if not parent_id:
        return None
    person, name = _person(parent_from)
    if person:
        return Party("facebook", person, name, "to") if person != page_id else None
    stored = (
        Message.objects.filter(global_key=f"facebook:{parent_id}", direction=Direction.INBOUND)
        .values_list("author_address", "author_name")
        .first()
    )
    if stored and stored[0]:
        return Party("facebook", stored[0], stored[1], "to")
    return None


# --- Webhook (threads.api.meta_webhook calls these) ------------------------------------------------------------


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>``."""
    if not secret or not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Constant time: an early exit would let an attacker find the signature byte by byte.
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def webhook_secrets() -> set[str]:
    """Every app secret a delivery may be signed with: the server's and those of pages using another app."""
    found = {settings.FACEBOOK_APP_SECRET} if settings.FACEBOOK_APP_SECRET else set()
    for account in ChannelAccount.objects.filter(kind=ChannelAccount.Kind.FACEBOOK).only("credentials", "name"):
        try:
            secret = credentials_of(account).get("app_secret")
        except ChannelAuthError:
            continue
        if secret:
            found.add(str(secret))
    return found


def webhook_events(entry: dict[str, Any]) -> list[RawEventIn]:
    """The raw events of one webhook ``entry`` (one page): Messenger messages and post comments. Read receipts,
    deliveries, reactions and feed items other than comments carry nothing to store and are skipped."""
    page_id = str(entry.get("id") or "")
    events: list[RawEventIn] = []
    for messaging in entry.get("messaging") or []:
        if not isinstance(messaging, dict):
            continue
        message, postback = messaging.get("message"), messaging.get("postback")
        if isinstance(message, dict) and message.get("mid"):
            event_id = str(message["mid"])
        elif isinstance(postback, dict):
            sender, _ = _person(messaging.get("sender"))
            event_id = str(postback.get("mid") or f"postback:{sender}:{messaging.get('timestamp')}")
        else:
            continue
        payload = {"source": "webhook", "page_id": page_id, "entry_time": entry.get("time"), "messaging": messaging}
        events.append(RawEventIn(event_id, MESSAGE_EVENT, _payload(payload), meta={"via": "webhook"}))
    for change in entry.get("changes") or []:
        if not isinstance(change, dict) or change.get("field") != "feed" or not isinstance(change.get("value"), dict):
            continue
        value = change["value"]
        verb = str(value.get("verb") or "")
        if value.get("item") != "comment" or not value.get("comment_id") or verb not in ("add", "edited", "remove"):
            continue
        comment_id = str(value["comment_id"])
        event_id = {"add": comment_id, "remove": f"{comment_id}:remove"}.get(
            verb, f"{comment_id}:edited:{value.get('created_time') or ''}"
        )
        payload = {"source": "webhook", "page_id": page_id, "entry_time": entry.get("time"), "change": value}
        events.append(RawEventIn(event_id, COMMENT_EVENT, _payload(payload), meta={"via": "webhook"}))
    return events


# --- Poller ----------------------------------------------------------------------------------------------------


def _ingest(account: ChannelAccount, events: list[RawEventIn], cursor: dict[str, Any]) -> None:
    from threads.services.pipeline import ingest_fetched

    ingest_fetched(account=account, events=events, cursor=copy.deepcopy(cursor))


def _days(account: ChannelAccount, key: str, default: int) -> dt.timedelta:
    try:
        return dt.timedelta(days=max(1, int((account.config or {}).get(key) or default)))
    except (TypeError, ValueError):
        return dt.timedelta(days=default)


def poll_page(account: ChannelAccount) -> None:
    """Read what is new on the page: Messenger conversations, then comments on recent posts."""
    client = GraphClient(account)
    cursor: dict[str, Any] = copy.deepcopy(account.cursor or {})
    _poll_conversations(client, account, cursor)
    _poll_comments(client, account, cursor)
    account.cursor = cursor


def _poll_conversations(client: GraphClient, account: ChannelAccount, cursor: dict[str, Any]) -> None:
    state = cursor.setdefault("messenger", {})
    read: dict[str, str] = state.setdefault("read", {})
    # Nothing older than the floor is read: the first sync's backfill, later a sliding window that bounds ``read``.
    floor = timezone.now() - _days(account, "backfill_days", DEFAULT_BACKFILL_DAYS)
    watermark = max(_time_or_none(state.get("watermark")) or floor, floor)
    high = _time_or_none(state.get("pass_high"))  # an interrupted pass goes on where it stopped
    finished = False
    for page in client.pages(f"{client.page_id}/conversations", fields=CONVERSATION_FIELDS, limit=25):
        for conversation in page.get("data") or []:
            if not isinstance(conversation, dict) or not conversation.get("id"):
                continue
            conversation_id = str(conversation["id"])
            updated_raw = str(conversation.get("updated_time") or "")
            updated = _time_or_none(updated_raw)
            if updated is not None and updated < watermark:
                finished = True  # newest first: everything below was read by an earlier pass
                break
            if read.get(conversation_id) == updated_raw:
                continue  # read at this very update already (the boundary, or earlier in an interrupted pass)
            # Back to where this conversation was last read, not to the watermark: a conversation that moved to
            # the top while an earlier pass paged through the list was skipped by that pass's cursor.
            since = _time_or_none(read.get(conversation_id)) or floor
            _pull_conversation(client, account, cursor, conversation, since)
            read[conversation_id] = updated_raw
            if updated is not None and (high is None or updated > high):
                high = updated
                state["pass_high"] = high.isoformat()
            _ingest(account, [], cursor)
        if finished:
            break
    state["watermark"] = max(high or watermark, watermark).isoformat()
    state.pop("pass_high", None)
    for conversation_id, updated_raw in list(read.items()):
        updated = _time_or_none(updated_raw)
        if updated is None or updated < floor:
            del read[conversation_id]  # quiet since before the floor: a new message is read back to the floor
    _ingest(account, [], cursor)


def _pull_conversation(
    client: GraphClient, account: ChannelAccount, cursor: dict[str, Any], conversation: dict[str, Any],
    since: dt.datetime,
) -> None:  # fmt: skip
    conversation_id = str(conversation["id"])
    participants = conversation.get("participants")
    participants = participants.get("data") if isinstance(participants, dict) else []
    for page in client.pages(f"{conversation_id}/messages", fields=MESSAGE_FIELDS, limit=50):
        events = []
        older = False
        for item in page.get("data") or []:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            created = _time_or_none(item.get("created_time"))
            if created is not None and created < since:
                older = True  # newest first; this page's older ones are harmless (they dedupe), stop paging
            payload = {
                "source": "graph", "page_id": client.page_id, "conversation_id": conversation_id,
                "participants": participants or [], "message": item,
            }  # fmt: skip
            events.append(RawEventIn(str(item["id"]), MESSAGE_EVENT, _payload(payload), meta={"via": "pull"}))
        _ingest(account, events, cursor)
        if older:
            return


def _poll_comments(client: GraphClient, account: ChannelAccount, cursor: dict[str, Any]) -> None:
    state = cursor.setdefault("comments", {})
    posts: dict[str, Any] = state.setdefault("posts", {})
    window_start = timezone.now() - _days(account, "comment_window_days", DEFAULT_COMMENT_WINDOW_DAYS)
    seen: set[str] = set()
    done = False
    for page in client.pages(
        f"{client.page_id}/posts", fields=POST_FIELDS, since=int(window_start.timestamp()), limit=25
    ):
        for post in page.get("data") or []:
            if not isinstance(post, dict) or not post.get("id"):
                continue
            created = _time_or_none(post.get("created_time"))
            if created is not None and created < window_start:
                done = True
                break
            post_id = str(post["id"])
            seen.add(post_id)
            comments = post.get("comments") if isinstance(post.get("comments"), dict) else {}
            summary = comments.get("summary") if isinstance(comments.get("summary"), dict) else {}
            mark = {"updated": str(post.get("updated_time") or ""), "count": summary.get("total_count")}
            known = posts.get(post_id) or {}
            if known and known.get("updated") == mark["updated"] and known.get("count") == mark["count"]:
                continue  # no new, edited or removed comment since the last full read
            _pull_comments(client, account, cursor, post_id)
            posts[post_id] = {**mark, "created": created.isoformat() if created else ""}
            _ingest(account, [], cursor)
        if done:
            break
    for post_id in list(posts):
        created = _time_or_none(posts[post_id].get("created"))
        if post_id not in seen and (created is None or created < window_start):
            del posts[post_id]  # out of the window: its comments are no longer watched
    _ingest(account, [], cursor)


def _pull_comments(client: GraphClient, account: ChannelAccount, cursor: dict[str, Any], post_id: str) -> None:
    """Every comment of a post (replies included), then removals: stored comments Facebook no longer returns."""
    started = timezone.now()
    returned: set[str] = set()
    for page in client.pages(
        f"{post_id}/comments", fields=COMMENT_FIELDS, filter="stream", order="chronological", limit=100
    ):
        events = []
        for item in page.get("data") or []:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            returned.add(str(item["id"]))
            payload = {"source": "graph", "page_id": client.page_id, "post_id": post_id, "comment": item}
            events.append(RawEventIn(str(item["id"]), COMMENT_EVENT, _payload(payload), meta={"via": "pull"}))
        _ingest(account, events, cursor)
    gone = (
        Message.objects.filter(
            channel=Channel.FACEBOOK, provider_thread_key=f"facebook:post:{post_id}", deleted_at__isnull=True,
            seen_by__contains=[account.pk], created_at__lt=started - DELETION_GRACE,
        )
        .exclude(delivery__in=[Message.Delivery.QUEUED, Message.Delivery.FAILED])
        .exclude(external_id__in=returned)
        .values_list("external_id", "author_address", "author_name", "sent_at")
    )  # fmt: skip
    removals = []
    for comment_id, address, name, sent_at in gone:
        payload = {
            "source": "pull", "page_id": client.page_id, "post_id": post_id, "deleted": True,
            "reason": "No longer returned by Facebook.",
            "comment": {"id": comment_id, "from": {"id": address, "name": name}, "created_time": sent_at.isoformat()},
        }  # fmt: skip
        removals.append(RawEventIn(f"{comment_id}:remove", COMMENT_EVENT, _payload(payload), meta={"via": "pull"}))
    if removals:
        _ingest(account, removals, cursor)


# --- Sending ---------------------------------------------------------------------------------------------------


def prepare_facebook(
    account: ChannelAccount, draft: OutgoingDraft, thread: Thread, reply_to: Message | None
) -> OutgoingDraft:
    """Decide where the reply goes, from the message it answers: a comment gets a comment reply, anything else a
    Messenger message to the person's page-scoped id. Refuses what Facebook would refuse, before it is stored."""
    page_id = page_id_of(account)
    if not page_id:
        raise DomainError(f"{account.name} has no page id; set it on the channel page.", code="no_page_id")
    if draft.cc:
        raise DomainError("A Facebook reply goes to one person; remove the copies.", fields={"cc": ["Not supported."]})
    if draft.attachments:
        raise DomainError(
            "Attachments cannot be sent through Facebook; send a link instead.",
            fields={"attachments": ["Not supported on Facebook."]}, code="attachments_not_supported",
        )  # fmt: skip
    answered = None
    if (
        reply_to is not None
        and reply_to.channel == Channel.FACEBOOK
        and (reply_to.channel_account_id == account.pk or account.pk in (reply_to.seen_by or []))
    ):
        answered = reply_to
    text = draft.body_text
    if answered is not None and answered.meta.get("fb_kind") == "comment":
        if len(text) > COMMENT_MAX_CHARS:
            raise DomainError(f"A Facebook comment has at most {COMMENT_MAX_CHARS} characters.",
                              fields={"body_text": ["Too long."]}, code="too_long")  # fmt: skip
        # Facebook nests comments one level deep: an answer to a reply joins the top-level comment's replies.
        target = str(answered.meta.get("parent_comment_id") or answered.external_id)
        post_id = str(answered.meta.get("post_id") or "")
        draft.meta = {"fb_target": "comment", "comment_id": target, "post_id": post_id, "page_id": page_id}
        draft.provider_thread_key = answered.provider_thread_key or f"facebook:post:{post_id}"
    else:
        psid = draft.to[0].address if draft.to else (answered.author_address if answered else "")
        if not psid.isdigit():
            raise DomainError(
                "Messenger replies go to the person's Facebook id (a number); pick their Facebook identity.",
                fields={"to": ["Not a Facebook id."]}, code="invalid_recipient",
            )  # fmt: skip
        if len(text) > MESSENGER_MAX_CHARS:
            raise DomainError(f"A Messenger message has at most {MESSENGER_MAX_CHARS} characters.",
                              fields={"body_text": ["Too long."]}, code="too_long")  # fmt: skip
        draft.meta = {"fb_target": "messenger", "psid": psid, "page_id": page_id}
        draft.provider_thread_key = f"facebook:psid:{page_id}:{psid}"
    if answered is not None:
        draft.in_reply_to = answered.external_id
    # Facebook names the message only when it is sent; until then a placeholder, which the Send API also carries
    # as ``metadata`` so the echo webhook can be told apart from a message written elsewhere.
    draft.external_id = f"{PENDING_PREFIX}{uuid.uuid4().hex}"
    draft.subject = ""
    return draft


def send_facebook(account: ChannelAccount, draft: OutgoingDraft) -> SendResult:
    client = GraphClient(account)
    target = draft.meta.get("fb_target")
    if target == "comment":
        comment_id = str(draft.meta.get("comment_id") or "")
        result = client.post(f"{comment_id}/comments", message=draft.body_text)
        new_id = str(result.get("id") or "")
        if not new_id:
            raise ConnectorError("Facebook accepted the comment reply but did not say its id.")
        meta = {"fb_kind": "comment", "page_id": client.page_id, "post_id": draft.meta.get("post_id", ""),
                "parent_comment_id": comment_id}  # fmt: skip
        return SendResult(external_id=new_id, meta=meta)
    if target == "messenger":
        psid = str(draft.meta.get("psid") or "")
        result = client.post(
            f"{client.page_id}/messages", messaging_type="RESPONSE",
            recipient=json.dumps({"id": psid}),
            message=json.dumps({"text": draft.body_text, "metadata": draft.external_id}, ensure_ascii=False),
        )  # fmt: skip
        mid = str(result.get("message_id") or "")
        if not mid:
            raise ConnectorError("Facebook accepted the message but did not say its id.")
        return SendResult(external_id=mid, meta={"fb_kind": "message", "page_id": client.page_id, "psid": psid})
    raise ConnectorError(f"This Facebook reply has no destination ({target!r}); write it again.")


# --- Connection test and listening -----------------------------------------------------------------------------


def connection_test(account: ChannelAccount) -> str:
    client = GraphClient(account)
    page = client.get(client.page_id, fields="id,name")
    return f"Connected to page {page.get('name') or '(no name)'} (id {page.get('id') or client.page_id})"


def _public_post(item: dict[str, Any], page_id: str, parent: str = "") -> PublicPost | None:
    posted = _time_or_none(item.get("created_time"))
    if posted is None or not item.get("id"):
        return None
    person, name = _person(item.get("from"))
    place = item.get("place") if isinstance(item.get("place"), dict) else {}
    location = place.get("location") if isinstance(place.get("location"), dict) else {}
    latitude, longitude = location.get("latitude"), location.get("longitude")
    return PublicPost(
        external_id=str(item["id"]), channel="facebook", text=str(item.get("message") or ""), posted_at=posted,
        url=str(item.get("permalink_url") or ""),
        author=Party("facebook", person, name, "from") if person else None,
        place=str(place.get("name") or ""),
        latitude=float(latitude) if isinstance(latitude, int | float) else None,
        longitude=float(longitude) if isinstance(longitude, int | float) else None,
        meta={"page_id": page_id, "kind": "comment" if parent else "post", **({"post_id": parent} if parent else {})},
    )  # fmt: skip


def fetch_page_posts(account: ChannelAccount, config: dict[str, Any], cursor: dict[str, Any]) -> PostPage:
    """A listening source: a page's public feed since the cursor (``since``: the newest post time seen, unix
    seconds). A backlog longer than FEED_PAGES_PER_FETCH pages returns ``more`` with a ``resume`` link."""
    client = GraphClient(account)
    page_id = str(config.get("page_id") or client.page_id).strip()
    since = cursor.get("since")
    if not isinstance(since, int):
        since = int((timezone.now() - dt.timedelta(days=LISTENING_BACKFILL_DAYS)).timestamp())
    high = cursor.get("high") if isinstance(cursor.get("high"), int) else since
    with_comments = bool(config.get("include_comments"))
    fields = FEED_FIELDS + ("," + FEED_COMMENT_FIELDS if with_comments else "")
    resume = cursor.get("resume")
    page = (
        client.follow(resume)
        if isinstance(resume, str)
        else client.get(f"{page_id}/feed", fields=fields, since=since, limit=100)
    )
    posts: list[PublicPost] = []
    fetched = 0
    while True:
        fetched += 1
        reached_old = False
        for item in page.get("data") or []:
            if not isinstance(item, dict):
                continue
            post = _public_post(item, page_id)
            if post is None:
                continue
            if post.posted_at.timestamp() < since:
                reached_old = True
                continue
            posts.append(post)
            high = max(high, int(post.posted_at.timestamp()))
            comments = item.get("comments") if with_comments and isinstance(item.get("comments"), dict) else {}
            for comment in comments.get("data") or []:
                found = _public_post(comment, page_id, parent=post.external_id) if isinstance(comment, dict) else None
                if found is not None:
                    posts.append(found)
        next_url = (page.get("paging") or {}).get("next") if isinstance(page.get("paging"), dict) else None
        if reached_old or not next_url or not page.get("data"):
            return PostPage(posts=posts, cursor={"since": high}, more=False)
        if fetched >= FEED_PAGES_PER_FETCH:
            return PostPage(posts=posts, cursor={"since": since, "high": high, "resume": str(next_url)}, more=True)
        page = client.follow(str(next_url))


register_normalizer(MESSAGE_EVENT, normalize_message_event)
register_normalizer(COMMENT_EVENT, normalize_comment_event)
register_poller(ChannelAccount.Kind.FACEBOOK, poll_page)
register_sender(ChannelAccount.Kind.FACEBOOK, send_facebook, prepare=prepare_facebook)
register_connection_test(ChannelAccount.Kind.FACEBOOK, connection_test)
register_post_fetcher("facebook_page", fetch_page_posts)
