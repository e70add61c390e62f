"""The connector interface every channel implements, and the registries the pipeline looks them up in.

A connector module (``threads/connectors/email/``, ``webhook.py``, later ``twitter.py``, ``facebook.py``,
``sms.py``) registers up to three things from ``threads.apps``:

- a **normalizer** per raw event type: ``RawEvent → list[NormalizedMessage]`` (pure: no database writes; raise
  ``NormalizeError`` for input it cannot read, and the event is dead-lettered with that message);
- a **poller** per ChannelAccount kind: ``poll(account)`` fetches what is new and hands it to
  ``threads.services.pipeline.ingest_fetched(account, events, cursor=…)``, batch by batch;
- a **sender** per ChannelAccount kind: ``send(account, draft) → SendResult`` delivers an outbound message.

Connectors signal provider trouble with the exceptions below; the sync task turns them into account status and
back-off. Nothing else about a provider leaks out of its module.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threads.models import ChannelAccount, Message, RawEvent, Thread


# --- Errors a connector raises -------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base class. ``str(exc)`` is shown to people on the channel account page: make it say what to do."""


class NormalizeError(ConnectorError):
    """The event cannot be read (malformed MIME, bad JSON, missing fields). It is dead-lettered, never lost."""


class ChannelAuthError(ConnectorError):
    """Credentials were refused (401/403, IMAP login failure, Graph error 190): the account needs re-auth and
    polling stops until someone fixes it."""


class ChannelUnavailable(ConnectorError):
    """The provider is down or unreachable: back off exponentially, up to a ceiling."""


class DeliveryRefused(ConnectorError):
    """The provider refused this one message for good (an opted-out recipient, an invalid number): fail it at once,
    the sender's own writes (an opt-out it learned) commit with it, the account is fine, nothing is retried."""


class ChannelRateLimited(ConnectorError):
    """The provider asked us to wait: ``retry_after`` seconds (from its reset header), bounded by the caller.

    ``partial``: only some endpoints are limited and the poller read the others (it skips a throttled endpoint by
    itself), so the account keeps its normal poll interval. ``others``: more limited endpoints of the same poll.
    """

    def __init__(
        self, message: str, *, retry_after: float, endpoint: str = "", partial: bool = False,
        others: list[ChannelRateLimited] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.retry_after = retry_after
        self.endpoint = endpoint
        self.partial = partial
        self.others = others or []


def credentials_of(account: ChannelAccount) -> dict[str, Any]:
    """The account's decrypted credentials. Unreadable ones are a re-authentication matter, not a crash."""
    if not account.credentials:
        return {}
    try:
        data = json.loads(account.credentials)
    except ValueError:
        raise ChannelAuthError(f"The stored credentials of {account.name} are unreadable: enter them again.") from None
    if not isinstance(data, dict):
        raise ChannelAuthError(f"The stored credentials of {account.name} are unreadable: enter them again.")
    return data


# --- What a normalizer produces ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """Someone on a message. ``kind`` is a ContactIdentity kind (email, phone, twitter, facebook, other) and
    ``address`` is already normalized the way contacts.identities normalizes it."""

    kind: str
    address: str
    name: str = ""
    role: str = "from"  # from, to, cc, bcc
    handle: str = ""  # social handle shown beside a numeric id


@dataclass
class AttachmentIn:
    name: str
    content_type: str
    data: bytes | None
    size: int
    omitted: str = ""  # why ``data`` is None (too large, unreadable)


@dataclass
class NormalizedMessage:
    """One message, channel-neutral. ``external_id`` is unique within the channel account; ``global_key``
    (default ``channel:external_id``) is unique across accounts, so the same message seen by two accounts is
    stored once. ``counterparts`` are the customer side: the author of an inbound message, the recipients of an
    outbound one; the first that matches a contact decides whose thread it lands in."""

    channel: str
    direction: str
    external_id: str
    sent_at: dt.datetime
    provider_thread_key: str = ""
    global_key: str | None = None
    thread_hint: int | None = None  # a thread id our own outbound message encoded (e-mail Message-ID)
    author: Party | None = None
    counterparts: list[Party] = field(default_factory=list)
    subject: str = ""
    body_text: str = ""
    body_display: str = ""
    body_html: str = ""  # sanitized by the pipeline, whatever the connector did
    attachments: list[AttachmentIn] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    raw_event_id: int | None = None
    delivery: str = ""
    created_by_id: int | None = None
    contact_id: int | None = None  # set when the caller already knows the contact (manual logging, replies)
    thread_id: int | None = None  # set when the caller already knows the thread (replies, manual logging)
    # The provider says it was deleted (a deleted tweet or comment): the stored message is marked, never dropped;
    # a deletion seen before the message itself stores a tombstone that the later copy cannot resurrect.
    deleted: bool = False
    # The provider says the text was edited (a Facebook comment): a stored copy takes the new text and keeps the
    # previous ones in ``meta["edits"]``; a first sighting is stored as it is.
    edited: bool = False

    def key(self) -> str:
        return self.global_key or f"{self.channel}:{self.external_id}"


@dataclass(frozen=True)
class RawEventIn:
    """What a connector fetched, before anything interprets it."""

    provider_event_id: str
    event_type: str
    payload: bytes
    content_type: str = "application/json"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutgoingDraft:
    """A reply or new message a rep writes in a thread, handed to the channel's sender."""

    to: list[Party]
    subject: str = ""
    body_text: str = ""
    cc: list[Party] = field(default_factory=list)
    attachments: list[AttachmentIn] = field(default_factory=list)
    external_id: str = ""  # decided before sending (e-mail Message-ID) so the sent copy dedupes
    from_address: str = ""  # our address on the channel (defaults to the account's)
    in_reply_to: str = ""  # the provider id of the message answered
    references: list[str] = field(default_factory=list)
    provider_thread_key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SendResult:
    external_id: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PublicPost:
    """A public post fetched for listening (a tweet from recent search, a page-feed post, a blog comment). It is
    not a conversation message: listening stores it once per source and runs its rules over it."""

    external_id: str
    channel: str  # twitter, facebook, blog, blog_comment, web …
    text: str
    posted_at: dt.datetime
    url: str = ""
    title: str = ""
    author: Party | None = None  # kind/address as a contact identity key, with handle and display name
    lang: str = ""  # ISO 639-1 when the provider says
    latitude: float | None = None
    longitude: float | None = None
    place: str = ""
    deleted: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PostPage:
    """What one fetch returned, and the cursor the next fetch starts from (committed with the posts)."""

    posts: list[PublicPost]
    cursor: dict[str, Any]
    more: bool = False  # the fetch stopped at a page limit: call again with ``cursor`` soon


Normalizer = Callable[["RawEvent", "ChannelAccount"], list[NormalizedMessage]]
Poller = Callable[["ChannelAccount"], None]
Sender = Callable[["ChannelAccount", OutgoingDraft], SendResult]
DraftPreparer = Callable[["ChannelAccount", OutgoingDraft, "Thread", "Message | None"], OutgoingDraft]

# ``fetch(account, config, cursor) → PostPage``: a listening source that runs through a connected social account
# (``twitter_search``: config["query"] in the provider's syntax; ``facebook_page``: config["page_id"]). It raises the
# connector errors above, like a poller.
PostFetcher = Callable[["ChannelAccount", dict[str, Any], dict[str, Any]], PostPage]

# ``test(account) → str``: one cheap authenticated call (who am I / page info / account fetch); returns a line to
# show ("Connected as @acme (id 123)") or raises the connector errors above.
ConnectionTest = Callable[["ChannelAccount"], str]

_NORMALIZERS: dict[str, Normalizer] = {}
_CONNECTION_TESTS: dict[str, ConnectionTest] = {}
_POST_FETCHERS: dict[str, PostFetcher] = {}
_POLLERS: dict[str, Poller] = {}
_SENDERS: dict[str, Sender] = {}
_PREPARERS: dict[str, DraftPreparer] = {}


def register_normalizer(event_type: str, fn: Normalizer) -> None:
    _NORMALIZERS[event_type] = fn


def register_poller(account_kind: str, fn: Poller) -> None:
    _POLLERS[account_kind] = fn


def register_sender(account_kind: str, fn: Sender, *, prepare: DraftPreparer | None = None) -> None:
    """``prepare(account, draft, thread, reply_to)`` fills channel headers (e-mail Message-ID, In-Reply-To) before the
    message is stored; ``fn`` then delivers it from a Celery task."""
    _SENDERS[account_kind] = fn
    if prepare is not None:
        _PREPARERS[account_kind] = prepare


def register_connection_test(account_kind: str, fn: ConnectionTest) -> None:
    _CONNECTION_TESTS[account_kind] = fn


def connection_test_for(account_kind: str) -> ConnectionTest | None:
    return _CONNECTION_TESTS.get(account_kind)


def register_post_fetcher(source_kind: str, fn: PostFetcher) -> None:
    _POST_FETCHERS[source_kind] = fn


def post_fetcher_for(source_kind: str) -> PostFetcher | None:
    return _POST_FETCHERS.get(source_kind)


def normalizer_for(event_type: str) -> Normalizer:
    try:
        return _NORMALIZERS[event_type]
    except KeyError:
        raise NormalizeError(f"No normalizer for event type {event_type!r}.") from None


def poller_for(account_kind: str) -> Poller | None:
    return _POLLERS.get(account_kind)


def sender_for(account_kind: str) -> Sender | None:
    return _SENDERS.get(account_kind)


def preparer_for(account_kind: str) -> DraftPreparer | None:
    return _PREPARERS.get(account_kind)
