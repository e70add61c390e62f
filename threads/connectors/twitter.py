"""Twitter/X connector: mentions, our own tweets and direct messages pulled over the X API v2 (tweepy's ``Client``),
public replies and DMs sent back, a connection test, and recent search as a listening source.

Account (ChannelAccount kind ``twitter``):

- ``credentials`` (JSON, encrypted): an OAuth 2.0 user-context token ``{"access_token", "refresh_token",
  "expires_at"}`` ("Sign in with X", threads.connectors.twitter_oauth; renewed here when it expires), or OAuth 1.0a
  ``{"consumer_key", "consumer_secret", "access_token", "access_token_secret"}`` (the app's keys and the account's
  own token from the developer portal; these never expire).
- ``config``: ``user_id`` and ``username`` (filled by the connection test or the first poll: direction is decided
  by the numeric id, which survives a rename); optional ``pull_mentions``, ``pull_own_tweets``, ``pull_dms``
  (default true) and ``max_pages`` (pages of 100 per stream and poll, default 10).

Raw events (payload = the provider's JSON for one item, shaped like a single-item v2 lookup: ``{"data": …,
"includes": {"users": […], "tweets": […], "places": […]}}`` with only the related includes):

- ``twitter.tweet``: a mention or one of our tweets; provider event id = the tweet id.
- ``twitter.dm``: a direct-message event; provider event id ``dm:<event id>``.
- ``twitter.tweet_delete``: the provider says a tweet is gone (compliance shape ``{"data": {"delete": {"tweet":
  {"id", "author_id"}, "event_at"}}}``; the poller also writes one when a mention's referenced tweet comes back as
  "Not Found"); provider event id ``delete:<tweet id>``. The stored message is marked deleted, never dropped.

Messages keep the default global key ``twitter:<id>`` (tweet id, or DM event id: both are snowflakes from one
sequence), which is what ``message_deliver`` gives a sent reply once X names it, so our reply seen again in a pull
is the same message. Thread keys: ``twitter:conv:<conversation id>`` and ``twitter:dm:<dm conversation id>``.

Cursor (``account.cursor``), committed by the pipeline with the page it covers:

- ``mentions`` / ``own_tweets``: ``since_id`` (everything up to it is stored) and, while a window of pages is being
  read newest-first, ``pending`` ``{"newest_id", "until_id"}``. ``since_id`` moves to ``newest_id`` only when the
  window's oldest page is stored; a poll cut short (a rate limit, a crash) resumes with ``until_id`` below the
  last stored page, so nothing between is skipped.
- ``dms``: ``newest_id``. The DM endpoint has no ``since_id``: pages are read newest-first until an event at or
  below ``newest_id``, which moves only with the last page.

Rate limits are per endpoint: a 429 raises ChannelRateLimited(endpoint=…) after the other endpoints were polled,
and the sync task records it in ``account.throttle``; the poller skips an endpoint until its time there has passed.
tweepy never sleeps (``wait_on_rate_limit=False``).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import requests
import tweepy
from django.utils import timezone

from crm.errors import DomainError
from threads.connectors import (
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
from threads.services.channel_accounts import channel_account_identity_set, channel_account_tokens_store

if TYPE_CHECKING:
    from threads.models import RawEvent, Thread

log = logging.getLogger(__name__)

TWEET_EVENT = "twitter.tweet"
DM_EVENT = "twitter.dm"
DELETE_EVENT = "twitter.tweet_delete"
SEARCH_SOURCE = "twitter_search"
PENDING_PREFIX = "pending:"  # external id of a reply until X names it

TIMEOUT = 30  # seconds per API call: a hung connection fails the poll instead of holding the worker
PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 10  # per timeline and poll; the rest waits in the cursor for the next poll
DM_MAX_PAGES = 50  # DMs reach back 30 days; a backlog beyond this many pages is left behind (logged)
SEARCH_PAGES_PER_FETCH = 5
SEARCH_WINDOW = dt.timedelta(days=7) - dt.timedelta(minutes=10)  # recent search refuses older since_id/until_id
DEFAULT_RATE_LIMIT_WAIT = 15 * 60  # X's windows are 15 minutes; used when a 429 has no reset header
REFRESH_MARGIN = 60  # renew an OAuth 2.0 token this many seconds before it expires
TWEET_MAX_WEIGHT = 280
DM_MAX_CHARS = 10_000
SNOWFLAKE_EPOCH_MS = 1288834974657

TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "lang", "geo", "entities", "referenced_tweets",
                "in_reply_to_user_id", "note_tweet"]  # fmt: skip
EXPANSIONS = ["author_id", "referenced_tweets.id", "in_reply_to_user_id", "entities.mentions.username", "geo.place_id"]
USER_FIELDS = ["username", "name"]
PLACE_FIELDS = ["full_name", "name", "country_code", "place_type", "geo"]
DM_EVENT_FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id", "participant_ids",
                   "referenced_tweets", "attachments"]  # fmt: skip
DM_EXPANSIONS = ["sender_id", "participant_ids", "referenced_tweets.id", "attachments.media_keys"]
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"


# --- Talking to X ----------------------------------------------------------------------------------------------


class _TimeoutSession(requests.Session):
    """tweepy sends every request without a timeout; a stalled connection must fail, not hold a worker forever."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(*args, **kwargs)


def _describe(exc: tweepy.HTTPException) -> str:
    response = exc.response
    status = getattr(response, "status_code", "")
    detail = "; ".join(str(m) for m in exc.api_messages if m) or str(getattr(response, "reason", "") or "")
    return f"{status} {detail}".strip()


def _retry_after(response: Any) -> float:
    """Seconds until the endpoint's window resets (``x-rate-limit-reset`` is epoch seconds)."""
    headers = getattr(response, "headers", None) or {}
    try:
        reset = float(headers.get("x-rate-limit-reset"))
    except (TypeError, ValueError):
        return float(DEFAULT_RATE_LIMIT_WAIT)
    return max(1.0, reset - time.time())


class XSession:
    """One account's authenticated use of the X API: the tweepy client, token renewal, and the mapping of provider
    trouble onto the connector errors. ``call(endpoint, method, …)`` names the rate-limit bucket it spends."""

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account
        creds = credentials_of(account)
        self.oauth1 = bool(creds.get("consumer_key") or creds.get("access_token_secret"))
        self.access_token = str(creds.get("access_token") or "")
        self.expires_at = creds.get("expires_at")
        self.can_refresh = bool(creds.get("refresh_token")) and not self.oauth1
        if self.oauth1:
            missing = [k for k in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
                       if not creds.get(k)]  # fmt: skip
            if missing:
                raise ChannelAuthError(f"{account.name} has incomplete OAuth 1.0a keys (missing {', '.join(missing)}).")
            self.client = tweepy.Client(
                consumer_key=creds["consumer_key"], consumer_secret=creds["consumer_secret"],
                access_token=creds["access_token"], access_token_secret=creds["access_token_secret"],
                return_type=dict, wait_on_rate_limit=False,
            )  # fmt: skip
        else:
            if not self.access_token:
                raise ChannelAuthError(f"{account.name} has no access token yet: sign in with X or paste one.")
            self.client = tweepy.Client(bearer_token=self.access_token, return_type=dict, wait_on_rate_limit=False)
        self.client.session = _TimeoutSession()

    def _expiring(self) -> bool:
        try:
            return self.expires_at is not None and float(self.expires_at) - REFRESH_MARGIN <= time.time()
        except (TypeError, ValueError):
            return False

    def _refresh(self) -> None:
        fresh = _tokens_refresh(account=self.account, stale_access_token=self.access_token)
        self.access_token = str(fresh["access_token"])
        self.expires_at = fresh.get("expires_at")
        self.client.bearer_token = self.access_token

    def call(self, endpoint: str, method: str, *args: Any, write: bool = False, **params: Any) -> dict[str, Any]:
        """``client.<method>(*args, **params)`` as a dict. ``write``: a refusal (403) is about this message (duplicate
        text, a user who takes no DMs), not the credentials."""
        if self.can_refresh and self._expiring():
            self._refresh()
        for attempt in (1, 2):
            try:
                result = getattr(self.client, method)(*args, user_auth=self.oauth1, **params)
            except tweepy.Unauthorized as exc:
                if attempt == 1 and self.can_refresh:
                    self._refresh()  # an expired OAuth 2.0 token: renew once, then try again
                    continue
                raise ChannelAuthError(
                    f"X refused the credentials of {self.account.name} ({_describe(exc)}): sign in with X again or "
                    "enter new tokens."
                ) from exc
            except tweepy.TooManyRequests as exc:
                wait = _retry_after(exc.response)
                raise ChannelRateLimited(
                    f"X rate limit on {endpoint} for {self.account.name}; next try in {int(wait)} s.",
                    retry_after=wait, endpoint=endpoint,
                ) from exc  # fmt: skip
            except tweepy.Forbidden as exc:
                if write:  # duplicate content, a user who does not accept DMs: retrying cannot help
                    raise DeliveryRefused(f"X refused to post it ({_describe(exc)}).") from exc
                raise ChannelAuthError(
                    f"X does not let {self.account.name} read {endpoint} ({_describe(exc)}): the token needs the "
                    "scopes tweet.read users.read dm.read, or turn that stream off in the account settings."
                ) from exc
            except tweepy.TwitterServerError as exc:
                raise ChannelUnavailable(f"X is having trouble ({_describe(exc)}); trying again later.") from exc
            except tweepy.HTTPException as exc:  # 400, 404 and other client errors: our request, not their outage
                raise ConnectorError(f"X rejected the {endpoint} request ({_describe(exc)}).") from exc
            except (requests.RequestException, ValueError) as exc:  # ValueError: a 200 without JSON (a proxy page)
                raise ChannelUnavailable(f"Cannot reach X ({type(exc).__name__}: {exc}).") from exc
            if not isinstance(result, dict):
                raise ChannelUnavailable(f"X answered {endpoint} with something that is not a JSON object.")
            return result
        raise AssertionError("unreachable")  # pragma: no cover


def _tokens_refresh(*, account: ChannelAccount, stale_access_token: str) -> dict[str, Any]:
    """Renew the OAuth 2.0 token once across workers (the service holds the row lock while X is asked)."""
    from threads.connectors import twitter_oauth

    def renew(stored: dict[str, Any]) -> dict[str, Any]:
        if not twitter_oauth.configured():
            raise ChannelAuthError(
                f"The X token of {account.name} expired and this server has no TWITTER_CLIENT_ID to renew it: "
                "sign in with X again or paste a new token."
            )
        return twitter_oauth.refresh(str(stored.get("refresh_token") or ""))

    return channel_account_tokens_store(
        account=account, stale_access_token=stale_access_token, renew=renew, margin_s=REFRESH_MARGIN
    )


def _identity_store(*, account: ChannelAccount, user_id: str, username: str) -> None:
    channel_account_identity_set(
        account=account, user_id=user_id, username=username, address=f"@{username}" if username else ""
    )


def _me(session: XSession) -> tuple[str, str]:
    """Our numeric user id and handle: from the config, else asked once (``get_me``) and stored."""
    account = session.account
    config = account.config or {}
    user_id = str(config.get("user_id") or "")
    if user_id.isdigit():
        return user_id, str(config.get("username") or "")
    data = session.call("users_me", "get_me", user_fields=USER_FIELDS).get("data") or {}
    user_id, username = str(data.get("id") or ""), str(data.get("username") or "")
    if not user_id.isdigit():
        raise ConnectorError("X did not say which user the token belongs to (GET /2/users/me had no id).")
    _identity_store(account=account, user_id=user_id, username=username)
    return user_id, username


# --- Reading payloads ------------------------------------------------------------------------------------------


def _snowflake(value: Any, what: str) -> str:
    text = str(value if value is not None else "").strip()
    if not text.isdigit():
        raise NormalizeError(f"{what} is not an X id: {value!r}")
    return text


def _snowflake_time(tweet_id: str) -> dt.datetime:
    """When an id was minted: X ids carry their creation time in milliseconds (above bit 22)."""
    ms = (int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _time(value: Any, fallback_id: str) -> dt.datetime:
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return _snowflake_time(fallback_id)


def _load(event: RawEvent) -> dict[str, Any]:
    try:
        doc = json.loads(bytes(event.payload))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NormalizeError(f"X event is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise NormalizeError("X event has no 'data' object.")
    return doc


def _by_id(items: Any) -> dict[str, dict[str, Any]]:
    return {str(i["id"]): i for i in items or [] if isinstance(i, dict) and i.get("id") is not None}


def _includes(doc: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    inc = doc.get("includes") if isinstance(doc.get("includes"), dict) else {}
    return {"users": _by_id(inc.get("users")), "tweets": _by_id(inc.get("tweets")), "places": _by_id(inc.get("places"))}


def _party(user_id: str, users: dict[str, dict[str, Any]], role: str) -> Party:
    user = users.get(user_id) or {}
    return Party("twitter", user_id, str(user.get("name") or "")[:200], role, str(user.get("username") or ""))


def _unescape(text: str) -> str:
    # X escapes exactly these three in tweet text (and nothing else, so a literal "&quot;" stays as typed).
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _tweet_text(tweet: dict[str, Any]) -> str:
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str):  # a long post: ``text`` is its first 280
        return _unescape(note["text"])
    text = tweet.get("text")
    return _unescape(text) if isinstance(text, str) else ""


def _lang(value: Any) -> str:
    code = str(value or "").lower()
    return code if len(code) == 2 and code.isalpha() else ""  # "und", "qme", "zxx": X could not tell


def _references(tweet: dict[str, Any]) -> dict[str, str]:
    """referenced_tweets as {type: id}: replied_to, quoted, retweeted."""
    out: dict[str, str] = {}
    for ref in tweet.get("referenced_tweets") or []:
        if isinstance(ref, dict) and ref.get("type") and str(ref.get("id") or "").isdigit():
            out.setdefault(str(ref["type"]), str(ref["id"]))
    return out


def _geo(tweet: dict[str, Any], places: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Exact coordinates when the author shared them, else the centre of the tagged place's bounding box."""
    geo = tweet.get("geo") if isinstance(tweet.get("geo"), dict) else {}
    out: dict[str, Any] = {}
    point = geo.get("coordinates") if isinstance(geo.get("coordinates"), dict) else {}
    coords = point.get("coordinates")
    if isinstance(coords, list) and len(coords) == 2 and all(isinstance(c, int | float) for c in coords):
        out["longitude"], out["latitude"] = float(coords[0]), float(coords[1])  # GeoJSON order: lon, lat
    place = places.get(str(geo.get("place_id") or "")) or {}
    if place:
        out["place"] = str(place.get("full_name") or place.get("name") or "")
        if place.get("country_code"):
            out["country_code"] = str(place["country_code"])
        pgeo = place.get("geo") if isinstance(place.get("geo"), dict) else {}
        bbox = pgeo.get("bbox")
        numeric = isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(c, int | float) for c in bbox)
        if "latitude" not in out and numeric:
            west, south, east, north = (float(c) for c in bbox)  # GeoJSON bbox: [west, south, east, north]
            out["longitude"], out["latitude"] = (west + east) / 2, (south + north) / 2
    return out


def _addressees(tweet: dict[str, Any], users: dict[str, dict[str, Any]], own_id: str) -> list[Party]:
    """Whom one of our tweets speaks to: the author it replies to, then everyone it mentions (not ourselves)."""
    by_name = {str(u.get("username") or "").lower(): uid for uid, u in users.items()}
    found: list[Party] = []
    own_handle = str((users.get(own_id) or {}).get("username") or "").lower()
    seen = {own_id, *(["@" + own_handle] if own_handle else [])}
    reply_user = str(tweet.get("in_reply_to_user_id") or "")
    if reply_user.isdigit() and reply_user not in seen:
        seen.add(reply_user)
        found.append(_party(reply_user, users, "to"))
    entities = tweet.get("entities") if isinstance(tweet.get("entities"), dict) else {}
    for mention in entities.get("mentions") or []:
        if not isinstance(mention, dict):
            continue
        username = str(mention.get("username") or "")
        uid = str(mention.get("id") or by_name.get(username.lower(), ""))
        if uid.isdigit():
            if uid not in seen:
                seen.add(uid)
                found.append(_party(uid, users, "to"))
        elif username and "@" + username.lower() not in seen:
            seen.add("@" + username.lower())
            found.append(Party("twitter", "@" + username.lower(), "", "to", username))
    return found


def _is_us(user_id: str, users: dict[str, dict[str, Any]], account: ChannelAccount) -> bool:
    own = str((account.config or {}).get("user_id") or "")
    if own:
        return user_id == own
    # Before the first connection test stored our id (a replay of old events): fall back on the handle.
    handle = (account.address or "").lstrip("@").lower()
    return bool(handle) and str((users.get(user_id) or {}).get("username") or "").lower() == handle


def _comparable(text: str) -> str:
    text = re.sub(r"https?://\S+", "", _unescape(text))
    text = re.sub(r"^(?:@\w+\s+)+", "", text.strip())  # X puts the reply's @mentions in front of its text
    return " ".join(text.split())


def _queued_copy(account: ChannelAccount, text: str, **draft: str) -> bool:
    """Is this tweet or DM of ours a reply Threadline is delivering right now?

    ``message_deliver`` stores X's id on the reply only after X answers, in the transaction that holds the reply; a
    pull that reads the tweet before that commit would store it a second time under its real id. While the reply is
    still queued under its placeholder the pulled copy is ignored (a later replay dedupes it against the real id)."""
    queued = Message.objects.filter(
        channel_account=account, channel=Channel.TWITTER, direction=Direction.OUTBOUND,
        delivery=Message.Delivery.QUEUED, **{f"meta__draft__{k}": v for k, v in draft.items()},
    )  # fmt: skip
    wanted = _comparable(text)
    return any(_comparable(body) == wanted for body in queued.values_list("body_text", flat=True)[:20])


# --- Normalizers -----------------------------------------------------------------------------------------------


def normalize_tweet_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    """A mention (inbound) or one of our tweets (outbound, to whom it replies or mentions)."""
    doc = _load(event)
    tweet = doc["data"]
    tweet_id = _snowflake(tweet.get("id"), "The tweet id")
    author_id = _snowflake(tweet.get("author_id"), f"The author of tweet {tweet_id}")
    inc = _includes(doc)
    users = inc["users"]
    refs = _references(tweet)
    if "retweeted" in refs:
        return []  # a retweet says nothing new to us; listening sees public posts
    author = _party(author_id, users, "from")
    text = _tweet_text(tweet)
    outbound = _is_us(author_id, users, account)
    own_id = author_id if outbound else str((account.config or {}).get("user_id") or "")
    if outbound:
        counterparts = _addressees(tweet, users, own_id)
        if not counterparts:
            return []  # our own broadcast, addressed to nobody in particular
        if _queued_copy(account, text, mode="reply", in_reply_to=refs.get("replied_to", "")):
            return []
    else:
        counterparts = [author]
    conversation = str(tweet.get("conversation_id") or tweet_id)
    meta: dict[str, Any] = {
        "kind": "tweet", "public": True, "conversation_id": conversation, "author_handle": author.handle,
        "url": f"https://x.com/{author.handle or 'i/web'}/status/{tweet_id}",
    }  # fmt: skip
    if _lang(tweet.get("lang")):
        meta["lang"] = _lang(tweet.get("lang"))
    if "replied_to" in refs:
        meta["in_reply_to"] = refs["replied_to"]
    if str(tweet.get("in_reply_to_user_id") or "").isdigit():
        meta["in_reply_to_user_id"] = str(tweet["in_reply_to_user_id"])
    if "quoted" in refs:
        meta["quoted"] = refs["quoted"]
    geo = _geo(tweet, inc["places"])
    if geo:
        meta["geo"] = geo
    return [
        NormalizedMessage(
            channel=Channel.TWITTER, direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
            external_id=tweet_id, sent_at=_time(tweet.get("created_at"), tweet_id),
            provider_thread_key=f"twitter:conv:{conversation}", author=author, counterparts=counterparts,
            body_text=text, body_display=text, meta=meta,
        )
    ]  # fmt: skip


def normalize_dm_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    """A direct message: inbound from its sender, or ours to the conversation's other participants."""
    doc = _load(event)
    dm = doc["data"]
    if str(dm.get("event_type") or "MessageCreate") != "MessageCreate":
        return []  # someone joined or left a group conversation
    dm_id = _snowflake(dm.get("id"), "The DM event id")
    sender_id = _snowflake(dm.get("sender_id"), f"The sender of DM {dm_id}")
    users = _includes(doc)["users"]
    conversation = str(dm.get("dm_conversation_id") or "")
    text = dm.get("text") if isinstance(dm.get("text"), str) else ""
    author = _party(sender_id, users, "from")
    outbound = _is_us(sender_id, users, account)
    if outbound:
        # A one-to-one conversation id is "<id>-<id>"; group conversations list their participants.
        ids = dm.get("participant_ids") or conversation.split("-")
        counterparts = [_party(str(p), users, "to") for p in ids if str(p).isdigit() and str(p) != sender_id]
        if not counterparts:
            return []
        if _queued_copy(account, text, mode="dm", dm_conversation_id=conversation) or _queued_copy(
            account, text, mode="dm", participant_id=counterparts[0].address
        ):
            return []
    else:
        counterparts = [author]
    meta: dict[str, Any] = {"kind": "dm", "public": False, "dm_conversation_id": conversation}
    attachments = dm.get("attachments") if isinstance(dm.get("attachments"), dict) else {}
    if attachments.get("media_keys"):
        meta["media_keys"] = [str(k) for k in attachments["media_keys"]]
    shared = [str(r.get("id")) for r in dm.get("referenced_tweets") or [] if isinstance(r, dict) and r.get("id")]
    if shared:
        meta["shared_tweets"] = shared
    return [
        NormalizedMessage(
            channel=Channel.TWITTER, direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
            external_id=dm_id, sent_at=_time(dm.get("created_at"), dm_id),
            provider_thread_key=f"twitter:dm:{conversation}" if conversation else "", author=author,
            counterparts=counterparts, body_text=text, body_display=text, meta=meta,
        )
    ]  # fmt: skip


def normalize_tweet_delete_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    """X says a tweet is gone: the stored message is marked deleted (its text kept); an unseen one leaves a tombstone.

    The tombstone names no author on purpose: a deleted tweet we never stored (a stranger's tweet that a mention
    answered) must not create a lead contact."""
    doc = _load(event)
    delete = doc["data"].get("delete")
    tweet = delete.get("tweet") if isinstance(delete, dict) else None
    if not isinstance(tweet, dict):
        raise NormalizeError("X deletion event has no data.delete.tweet object.")
    tweet_id = _snowflake(tweet.get("id"), "The deleted tweet id")
    author_id = str(tweet.get("author_id") or "")
    own = str((account.config or {}).get("user_id") or "")
    meta: dict[str, Any] = {"kind": "tweet", "public": True, "url": f"https://x.com/i/web/status/{tweet_id}"}
    if author_id.isdigit():
        meta["author_id"] = author_id
    if isinstance(delete.get("event_at"), str):
        meta["deleted_reported_at"] = delete["event_at"]
    return [
        NormalizedMessage(
            channel=Channel.TWITTER,
            direction=Direction.OUTBOUND if own and author_id == own else Direction.INBOUND,
            external_id=tweet_id, sent_at=_snowflake_time(tweet_id), meta=meta, deleted=True,
        )
    ]  # fmt: skip


# --- Poller ----------------------------------------------------------------------------------------------------


def _payload(
    data: dict[str, Any], users: list[dict[str, Any]], tweets: Sequence[dict[str, Any]] = (),
    places: Sequence[dict[str, Any]] = (),
) -> bytes:  # fmt: skip
    includes = {k: list(v) for k, v in (("users", users), ("tweets", tweets), ("places", places)) if v}
    doc: dict[str, Any] = {"data": data, **({"includes": includes} if includes else {})}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()


def _tweet_events(response: dict[str, Any], source: str) -> list[RawEventIn]:
    """One raw event per tweet (with its author, the users it addresses, its referenced tweets and place), plus a
    deletion event for each referenced tweet X reports as not found."""
    inc = _includes(response)
    events: list[RawEventIn] = []
    replied_by: dict[str, str] = {}  # referenced tweet id → the user it was written by (in_reply_to_user_id)
    for tweet in response.get("data") or []:
        if not isinstance(tweet, dict) or not str(tweet.get("id") or "").isdigit():
            continue
        refs = _references(tweet)
        if "replied_to" in refs and str(tweet.get("in_reply_to_user_id") or "").isdigit():
            replied_by[refs["replied_to"]] = str(tweet["in_reply_to_user_id"])
        entities = tweet.get("entities") if isinstance(tweet.get("entities"), dict) else {}
        user_ids = [str(tweet.get("author_id") or ""), str(tweet.get("in_reply_to_user_id") or "")]
        user_ids += [str(m.get("id") or "") for m in entities.get("mentions") or [] if isinstance(m, dict)]
        users = [inc["users"][u] for u in dict.fromkeys(user_ids) if u in inc["users"]]
        tweets = [inc["tweets"][t] for t in refs.values() if t in inc["tweets"]]
        geo = tweet.get("geo") if isinstance(tweet.get("geo"), dict) else {}
        places = [inc["places"][p] for p in [str(geo.get("place_id") or "")] if p in inc["places"]]
        events.append(RawEventIn(str(tweet["id"]), TWEET_EVENT, _payload(tweet, users, tweets, places),
                                 meta={"source": source}))  # fmt: skip
    now = timezone.now().isoformat()
    for error in response.get("errors") or []:
        if not isinstance(error, dict) or error.get("type") != NOT_FOUND or error.get("resource_type") != "tweet":
            continue
        gone = str(error.get("resource_id") or error.get("value") or "")
        if not gone.isdigit():
            continue
        tweet = {"id": gone, **({"author_id": replied_by[gone]} if gone in replied_by else {})}
        payload = {"data": {"delete": {"tweet": tweet, "event_at": now}}, "errors": [error]}
        events.append(RawEventIn(f"delete:{gone}", DELETE_EVENT, json.dumps(payload, sort_keys=True).encode(),
                                 meta={"source": source}))  # fmt: skip
    return events


def _dm_events(response: dict[str, Any], items: list[dict[str, Any]]) -> list[RawEventIn]:
    inc = _includes(response)
    events = []
    for dm in items:
        ids = [str(dm.get("sender_id") or ""), *(str(p) for p in dm.get("participant_ids") or [])]
        ids += str(dm.get("dm_conversation_id") or "").split("-")
        users = [inc["users"][u] for u in dict.fromkeys(ids) if u in inc["users"]]
        refs = [str(r.get("id")) for r in dm.get("referenced_tweets") or [] if isinstance(r, dict)]
        tweets = [inc["tweets"][t] for t in refs if t in inc["tweets"]]
        events.append(RawEventIn(f"dm:{dm['id']}", DM_EVENT, _payload(dm, users, tweets), meta={"source": "dms"}))
    return events


def _ids(items: Any) -> list[int]:
    return [int(i["id"]) for i in items or [] if isinstance(i, dict) and str(i.get("id") or "").isdigit()]


def _pages(
    session: XSession, *, endpoint: str, method: str, state: dict[str, Any], params: dict[str, Any], budget: int,
    args: tuple[Any, ...] = (), page_param: str = "pagination_token",
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Pages of a newest-first timeline above ``state["since_id"]``, each yielded after ``state`` says how far the
    stored part reaches (so the caller commits the page and the state together).

    A window of pages is read with ``pending`` = {newest id of the window, oldest id stored so far}; ``since_id``
    jumps to the window's newest only when its last page is in. An interrupted window is finished first (``until_id``
    below what is stored), then what arrived meanwhile is read as a new window."""
    fetched = 0
    while fetched < budget:
        pending = state.get("pending") if isinstance(state.get("pending"), dict) else None
        if pending and not (str(pending.get("newest_id")).isdigit() and str(pending.get("until_id")).isdigit()):
            pending = None
            state.pop("pending", None)
        resuming = pending is not None
        base = {**params, "max_results": PAGE_SIZE}
        if str(state.get("since_id") or "").isdigit():
            base["since_id"] = str(state["since_id"])
        if pending:
            base["until_id"] = str(pending["until_id"])
        token: str | None = None
        while fetched < budget:
            response = session.call(endpoint, method, *args, **base, **({page_param: token} if token else {}))
            fetched += 1
            ids = _ids(response.get("data"))
            token = (response.get("meta") or {}).get("next_token") if ids else None
            newest = str(pending["newest_id"]) if pending else (str(max(ids)) if ids else None)
            if token:
                pending = {"newest_id": newest, "until_id": str(min(ids))}
                state["pending"] = pending
            else:
                if newest is not None:
                    state["since_id"] = str(max(int(newest), int(state.get("since_id") or 0)))
                state.pop("pending", None)
            yield response
            if not token:
                break
        if not resuming:
            return


def _max_pages(account: ChannelAccount) -> int:
    try:
        return max(1, int((account.config or {}).get("max_pages") or DEFAULT_MAX_PAGES))
    except (TypeError, ValueError):
        return DEFAULT_MAX_PAGES


def _throttled(account: ChannelAccount, endpoint: str) -> bool:
    """Did a 429 on ``endpoint`` tell us to wait past now? (``account.throttle``, written by the sync task.)"""
    until = (account.throttle or {}).get(endpoint)
    try:
        return bool(until) and dt.datetime.fromisoformat(str(until)) > timezone.now()
    except ValueError:
        return False


def _ingest(account: ChannelAccount, events: list[RawEventIn], cursor: dict[str, Any] | None) -> None:
    from threads.services.pipeline import ingest_fetched

    ingest_fetched(account=account, events=events, cursor=copy.deepcopy(cursor) if cursor is not None else None)


def _pull_timeline(
    session: XSession, account: ChannelAccount, cursor: dict[str, Any], *, key: str, endpoint: str, method: str,
    user_id: str, extra: dict[str, Any],
) -> None:  # fmt: skip
    params = {"expansions": EXPANSIONS, "tweet_fields": TWEET_FIELDS, "user_fields": USER_FIELDS,
              "place_fields": PLACE_FIELDS, **extra}  # fmt: skip
    state = cursor.setdefault(key, {})
    for response in _pages(session, endpoint=endpoint, method=method, state=state, params=params,
                           budget=_max_pages(account), args=(user_id,)):  # fmt: skip
        _ingest(account, _tweet_events(response, key), cursor)


def _pull_dms(session: XSession, account: ChannelAccount, cursor: dict[str, Any]) -> None:
    state = cursor.setdefault("dms", {})
    stop_at = int(state["newest_id"]) if str(state.get("newest_id") or "").isdigit() else 0
    newest = stop_at
    token: str | None = None
    for _ in range(DM_MAX_PAGES):
        response = session.call(
            "dm_events", "get_direct_message_events", dm_event_fields=DM_EVENT_FIELDS, expansions=DM_EXPANSIONS,
            user_fields=USER_FIELDS, event_types="MessageCreate", max_results=PAGE_SIZE,
            **({"pagination_token": token} if token else {}),
        )  # fmt: skip
        items = [e for e in response.get("data") or [] if isinstance(e, dict) and str(e.get("id") or "").isdigit()]
        fresh = [e for e in items if int(e["id"]) > stop_at]
        newest = max([newest, *(int(e["id"]) for e in items)])
        token = (response.get("meta") or {}).get("next_token")
        done = len(fresh) < len(items) or not token or not items
        if done and newest:
            state["newest_id"] = str(newest)
        # Pages before the last carry no cursor: the newest id may move only once everything below it is stored.
        _ingest(account, _dm_events(response, fresh), cursor if done else None)
        if done:
            return
    log.warning("channel account %s: DM backlog beyond %s pages left unread", account.pk, DM_MAX_PAGES)
    state["newest_id"] = str(newest)
    _ingest(account, [], cursor)


def poll_account(account: ChannelAccount) -> None:
    """Pull mentions, our own tweets and DMs since the cursor into the pipeline, page by page."""
    session = XSession(account)
    user_id, _ = _me(session)
    config = account.config or {}
    cursor: dict[str, Any] = copy.deepcopy(account.cursor or {})
    limited: list[ChannelRateLimited] = []
    streams = [
        ("pull_mentions", "mentions", lambda: _pull_timeline(
            session, account, cursor, key="mentions", endpoint="mentions", method="get_users_mentions",
            user_id=user_id, extra={})),
        ("pull_own_tweets", "timeline", lambda: _pull_timeline(
            session, account, cursor, key="own_tweets", endpoint="timeline", method="get_users_tweets",
            user_id=user_id, extra={"exclude": ["retweets"]})),
        ("pull_dms", "dm_events", lambda: _pull_dms(session, account, cursor)),
    ]  # fmt: skip
    read = 0
    for flag, endpoint, pull in streams:
        if config.get(flag, True) is False or _throttled(account, endpoint):
            continue
        try:
            pull()
            read += 1
        except ChannelRateLimited as exc:
            # One exhausted endpoint must not starve the others: finish them, then report the limit.
            limited.append(exc)
    account.cursor = cursor
    if limited:
        first = min(limited, key=lambda exc: exc.retry_after)
        first.others = [exc for exc in limited if exc is not first]
        first.partial = read > 0
        raise first


# --- Sending ---------------------------------------------------------------------------------------------------

_WEIGHT_ONE = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))  # twitter-text v3: everything else weighs 2
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
URL_WEIGHT = 23  # every link is shortened to a t.co link of this weight


def tweet_weight(text: str) -> int:
    """A tweet's length the way X counts it: Latin script 1, CJK and emoji 2, any link 23, an emoji sequence
    (skin tone, family, flag) once."""
    text = unicodedata.normalize("NFC", text)
    total = URL_WEIGHT * len(_URL.findall(text))
    joined = regional = False
    for char in _URL.sub("", text):
        code = ord(char)
        if joined:  # the character a zero-width joiner glued to the previous emoji
            joined = False
            continue
        if code == 0x200D:
            joined = True
            continue
        if code in (0xFE0E, 0xFE0F, 0x20E3) or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
            continue  # variation selectors, keycap, skin tones, tag characters: part of the emoji before
        if 0x1F1E6 <= code <= 0x1F1FF:  # a flag is two regional indicators
            regional = not regional
            if not regional:
                continue
        else:
            regional = False
        total += 1 if any(low <= code <= high for low, high in _WEIGHT_ONE) else 2
    return total


def _dm_conversation_of(message: Message) -> str:
    conversation = str((message.meta or {}).get("dm_conversation_id") or "")
    if not conversation and message.provider_thread_key.startswith("twitter:dm:"):
        conversation = message.provider_thread_key.removeprefix("twitter:dm:")
    return conversation


def prepare_twitter(
    account: ChannelAccount, draft: OutgoingDraft, thread: Thread, reply_to: Message | None
) -> OutgoingDraft:
    """Public reply or DM, decided before the message is stored: a reply to the tweet being answered, a DM when what
    is answered was a DM (or nothing on X was, or ``draft.meta["mode"] == "dm"``). Refuses what X would refuse."""
    if draft.attachments:
        raise DomainError(
            "Attachments cannot be sent to X from Threadline yet; send a link instead.",
            fields={"attachments": ["Not supported on X."]}, code="attachments_not_supported",
        )  # fmt: skip
    if draft.cc:
        raise DomainError(
            "A reply on X goes to one conversation; remove the copies.", fields={"cc": ["Not supported."]}
        )
    answered = reply_to if reply_to is not None and reply_to.channel == Channel.TWITTER else None
    is_dm = answered is not None and (answered.meta or {}).get("kind") == "dm"
    mode = str(draft.meta.get("mode") or "")
    if mode not in ("", "reply", "dm"):
        raise DomainError(f"Unknown X reply mode {mode!r}: reply or dm.", code="invalid_mode")
    if not mode:
        # A deleted tweet cannot be answered in public; the person still can be, privately.
        mode = "reply" if answered is not None and not is_dm and answered.deleted_at is None else "dm"
    text = draft.body_text
    own_id = str((account.config or {}).get("user_id") or "")
    if mode == "reply":
        if answered is None or is_dm or not answered.external_id.isdigit():
            raise DomainError("There is no tweet in this thread to reply to; send a direct message instead.",
                              code="nothing_to_reply_to")  # fmt: skip
        weight = tweet_weight(text)
        if weight > TWEET_MAX_WEIGHT:
            raise DomainError(
                f"A reply on X has at most {TWEET_MAX_WEIGHT} characters (links count 23, emoji and CJK 2); "
                f"this one counts {weight}.", fields={"body_text": ["Too long for X."]}, code="too_long",
            )  # fmt: skip
        draft.in_reply_to = answered.external_id
        draft.provider_thread_key = answered.provider_thread_key or f"twitter:conv:{answered.external_id}"
        draft.meta = {"mode": "reply"}
    else:
        if len(text) > DM_MAX_CHARS:
            raise DomainError(f"A direct message on X has at most {DM_MAX_CHARS} characters.",
                              fields={"body_text": ["Too long for X."]}, code="too_long")  # fmt: skip
        recipient = draft.to[0].address if draft.to else ""
        # A DM conversation belongs to the X account that took part in it; another of our accounts writes afresh.
        ours = answered is not None and (answered.channel_account_id == account.pk or account.pk in answered.seen_by)
        conversation = _dm_conversation_of(answered) if is_dm and ours and answered is not None else ""
        if conversation and (not recipient or recipient == answered.author_address):  # type: ignore[union-attr]
            draft.meta = {"mode": "dm", "dm_conversation_id": conversation}
            draft.provider_thread_key = f"twitter:dm:{conversation}"
        else:
            if not (recipient.isdigit() or recipient.startswith("@")):
                raise DomainError("Choose the person's X account to send the direct message to.",
                                  fields={"to": ["Not an X user."]}, code="invalid_recipient")  # fmt: skip
            draft.meta = {"mode": "dm", "participant_id": recipient}
            if recipient.isdigit() and own_id:
                pair = sorted((recipient, own_id), key=int)  # X names a one-to-one conversation "<low>-<high>"
                draft.provider_thread_key = f"twitter:dm:{pair[0]}-{pair[1]}"
        if answered is not None:
            draft.in_reply_to = answered.external_id
    draft.subject = ""
    draft.external_id = f"{PENDING_PREFIX}{uuid.uuid4().hex}"
    return draft


def send_twitter(account: ChannelAccount, draft: OutgoingDraft) -> SendResult:
    """Post the reply or DM; its X id becomes the message's, so the copy a later pull reads is the same message."""
    session = XSession(account)
    mode = draft.meta.get("mode") or ("reply" if draft.in_reply_to.isdigit() else "dm")
    if mode == "reply":
        response = session.call("tweets", "create_tweet", text=draft.body_text,
                                in_reply_to_tweet_id=draft.in_reply_to or None, write=True)  # fmt: skip
        tweet_id = str((response.get("data") or {}).get("id") or "")
        if not tweet_id.isdigit():
            raise ConnectorError("X accepted the reply but did not say its id.")
        handle = str((account.config or {}).get("username") or account.address.lstrip("@") or "i/web")
        return SendResult(external_id=tweet_id, meta={"url": f"https://x.com/{handle}/status/{tweet_id}"})
    conversation = str(draft.meta.get("dm_conversation_id") or "")
    if conversation:
        response = session.call("dm_create", "create_direct_message", dm_conversation_id=conversation,
                                 text=draft.body_text, write=True)  # fmt: skip
    else:
        participant = str(draft.meta.get("participant_id") or (draft.to[0].address if draft.to else ""))
        if participant.startswith("@"):
            found = session.call("users", "get_user", username=participant[1:], user_fields=USER_FIELDS)
            participant = str((found.get("data") or {}).get("id") or "")
            if not participant.isdigit():
                raise ConnectorError(f"X has no user {draft.meta.get('participant_id')}; check the handle.")
        if not participant.isdigit():
            raise ConnectorError("This direct message names no X user to send it to; write it again.")
        response = session.call("dm_create", "create_direct_message", participant_id=participant,
                                text=draft.body_text, write=True)  # fmt: skip
    data = response.get("data") or {}
    event_id = str(data.get("dm_event_id") or "")
    if not event_id.isdigit():
        raise ConnectorError("X accepted the direct message but did not say its id.")
    return SendResult(external_id=event_id, meta={"dm_conversation_id": str(data.get("dm_conversation_id") or "")})


# --- Connection test and listening -----------------------------------------------------------------------------


def connection_test(account: ChannelAccount) -> str:
    """Ask X who the token belongs to and remember it (the id decides which messages are ours)."""
    session = XSession(account)
    data = session.call("users_me", "get_me", user_fields=USER_FIELDS).get("data") or {}
    user_id, username = str(data.get("id") or ""), str(data.get("username") or "")
    if not user_id.isdigit():
        raise ConnectorError("X answered GET /2/users/me without a user id.")
    _identity_store(account=account, user_id=user_id, username=username)
    return f"Connected as @{username} (id {user_id})."


def _public_posts(response: dict[str, Any]) -> list[PublicPost]:
    inc = _includes(response)
    posts = []
    for tweet in response.get("data") or []:
        if not isinstance(tweet, dict) or not str(tweet.get("id") or "").isdigit():
            continue
        tweet_id = str(tweet["id"])
        author_id = str(tweet.get("author_id") or "")
        author = _party(author_id, inc["users"], "from") if author_id.isdigit() else None
        user = inc["users"].get(author_id) or {}
        metrics = user.get("public_metrics") if isinstance(user.get("public_metrics"), dict) else {}
        geo = _geo(tweet, inc["places"])
        meta: dict[str, Any] = {"conversation_id": str(tweet.get("conversation_id") or tweet_id), **_references(tweet)}
        if isinstance(tweet.get("public_metrics"), dict):
            meta["metrics"] = tweet["public_metrics"]
        if "followers_count" in metrics:
            meta["author_followers"] = metrics["followers_count"]
        if geo.get("country_code"):
            meta["country_code"] = geo["country_code"]
        posts.append(
            PublicPost(
                external_id=tweet_id, channel="twitter", text=_tweet_text(tweet),
                posted_at=_time(tweet.get("created_at"), tweet_id),
                url=f"https://x.com/{author.handle if author and author.handle else 'i/web'}/status/{tweet_id}",
                author=author, lang=_lang(tweet.get("lang")), latitude=geo.get("latitude"),
                longitude=geo.get("longitude"), place=str(geo.get("place") or ""), meta=meta,
            )
        )  # fmt: skip
    return posts


def fetch_search(account: ChannelAccount, config: dict[str, Any], cursor: dict[str, Any]) -> PostPage:
    """A listening source: recent search (last 7 days) for ``config["query"]`` in X's query syntax, newer than the
    cursor. At most ``config["max_pages"]`` pages of 100 per call; ``more`` asks to be called again."""
    query = str(config.get("query") or "").strip()
    if not query:
        raise ConnectorError('A Twitter/X search needs a query (X search syntax, e.g. "acme -is:retweet").')
    if len(query) > 512:
        raise ConnectorError(f"X recent search takes queries of at most 512 characters; this one has {len(query)}.")
    if _throttled(account, "search"):
        until = dt.datetime.fromisoformat(str(account.throttle["search"]))
        raise ChannelRateLimited("X search is rate limited for this account.", endpoint="search",
                                 retry_after=max(1.0, (until - timezone.now()).total_seconds()))  # fmt: skip
    try:
        budget = max(1, int(config.get("max_pages") or SEARCH_PAGES_PER_FETCH))
    except (TypeError, ValueError):
        budget = SEARCH_PAGES_PER_FETCH
    state = copy.deepcopy(cursor or {})
    oldest_allowed = timezone.now() - SEARCH_WINDOW
    # X refuses since_id/until_id older than its 7-day window: a source that stood still that long starts afresh.
    if str(state.get("since_id") or "").isdigit() and _snowflake_time(str(state["since_id"])) < oldest_allowed:
        state.pop("since_id")
    pending = state.get("pending") if isinstance(state.get("pending"), dict) else {}
    if pending and (not str(pending.get("until_id") or "").isdigit()
                    or _snowflake_time(str(pending["until_id"])) < oldest_allowed):  # fmt: skip
        state.pop("pending")
    session = XSession(account)
    params = {"query": query, "expansions": ["author_id", "geo.place_id"], "place_fields": PLACE_FIELDS,
              "tweet_fields": [*TWEET_FIELDS, "public_metrics"],
              "user_fields": [*USER_FIELDS, "public_metrics", "verified"]}  # fmt: skip
    posts: list[PublicPost] = []
    pages = 0
    try:
        for response in _pages(session, endpoint="search", method="search_recent_tweets", state=state,
                               params=params, budget=budget, page_param="next_token"):  # fmt: skip
            pages += 1
            posts += _public_posts(response)
    except ChannelRateLimited:
        if not pages:
            raise
        return PostPage(posts=posts, cursor=state, more=True)  # keep what arrived; the rest after the reset
    return PostPage(posts=posts, cursor=state, more=bool(state.get("pending")))


register_normalizer(TWEET_EVENT, normalize_tweet_event)
register_normalizer(DM_EVENT, normalize_dm_event)
register_normalizer(DELETE_EVENT, normalize_tweet_delete_event)
register_poller(ChannelAccount.Kind.TWITTER, poll_account)
register_sender(ChannelAccount.Kind.TWITTER, send_twitter, prepare=prepare_twitter)
register_connection_test(ChannelAccount.Kind.TWITTER, connection_test)
register_post_fetcher(SEARCH_SOURCE, fetch_search)
