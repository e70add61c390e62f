"""RSS and Atom feeds (blogs, news, a blog's comments feed) as a listening source.

Fetched with ``requests`` (timeouts, a size limit) and a conditional GET: the ETag and Last-Modified of the last
answer are kept in ``source.cursor``, so an unchanged feed costs a 304 and nothing else. Parsed with feedparser;
HTML is reduced to text with nh3 (no tag survives). A feed that is not well-formed but still yields entries
keeps them and reports the problem as the source's last error; one that yields nothing fails the fetch.

``source.config``: ``{"channel": "blog_comment"}`` (or ``{"comments": true}``) marks a comments feed, whose
entries are stored as ``blog_comment`` posts; ``"news"`` and ``"web"`` are accepted too; default ``blog``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import html
import re
from typing import Any

import feedparser
import nh3
import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from contacts.identities import normalize_email
from listening.models import ListeningSource
from listening.sources import WarnedPostPage, register_source_fetcher
from threads.connectors import ChannelRateLimited, ChannelUnavailable, ConnectorError, Party, PostPage, PublicPost

USER_AGENT = "Threadline listening (+https://github.com/threadline; feed reader)"
ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, application/xml;q=0.8, */*;q=0.5"
MAX_ENTRIES = 500
TEXT_MAX_CHARS = 100_000
FEED_CHANNELS = {"blog", "blog_comment", "news", "web"}
_BLOCK_END = re.compile(r"(?i)<\s*(br\s*/?|/p|/div|/li|/h[1-6]|/blockquote|/tr|/pre)\s*>")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def html_to_text(value: str) -> str:
    """Readable text of an HTML fragment: block ends become line breaks, every tag goes, entities are decoded."""
    if not value:
        return ""
    marked = _BLOCK_END.sub("\n", value)
    text = html.unescape(nh3.clean(marked, tags=set(), attributes={}, strip_comments=True))
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


def _channel(source: ListeningSource) -> str:
    config = source.config or {}
    if config.get("comments") is True:
        return "blog_comment"
    channel = str(config.get("channel") or "blog")
    return channel if channel in FEED_CHANNELS else "blog"


def _when(entry: Any) -> dt.datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            return dt.datetime.fromtimestamp(calendar.timegm(parsed), tz=dt.UTC)
    return None


def _author(entry: Any) -> Party | None:
    detail = entry.get("author_detail") or {}
    name = str(detail.get("name") or entry.get("author") or "").strip()[:200]
    email = str(detail.get("email") or "").strip()
    if email:
        try:
            return Party("email", normalize_email(email), name, "from")
        except ValidationError:
            pass
    return Party("", "", name, "from") if name else None


def _geo(entry: Any) -> tuple[float | None, float | None]:
    where = entry.get("where")
    if isinstance(where, dict) and where.get("type") == "Point":
        coordinates = where.get("coordinates") or ()
        if len(coordinates) >= 2:
            lon, lat = coordinates[0], coordinates[1]
            if isinstance(lat, int | float) and isinstance(lon, int | float):
                return float(lat), float(lon)
    return None, None


def _lang(value: str) -> str:
    return (value or "").split("-")[0].split("_")[0].strip().lower()[:8]


def _external_id(entry: Any, title: str, text: str) -> str:
    for key in ("id", "guid", "link"):
        value = str(entry.get(key) or "").strip()
        if value:
            return value
    return "sha256:" + hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()


def entry_post(entry: Any, *, channel: str, feed_lang: str, now: dt.datetime) -> PublicPost | None:
    content = entry.get("content") or []
    raw = (content[0].get("value") if content else "") or entry.get("summary") or entry.get("description") or ""
    title = html_to_text(str(entry.get("title") or ""))[:1000]
    text = html_to_text(str(raw))[:TEXT_MAX_CHARS]
    if not title and not text:
        return None
    link = str(entry.get("link") or "")
    lat, lon = _geo(entry)
    tags = [str(t.get("term")) for t in entry.get("tags") or [] if isinstance(t, dict) and t.get("term")]
    return PublicPost(
        external_id=_external_id(entry, title, text), channel=channel, text=text, title=title,
        posted_at=_when(entry) or now, url=link if link.lower().startswith(("http://", "https://")) else "",
        author=_author(entry), lang=_lang(str(entry.get("language") or feed_lang)), latitude=lat, longitude=lon,
        meta={"tags": tags[:20]} if tags else {},
    )  # fmt: skip


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    if value.isdigit():
        return float(value)
    try:
        when = dt.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.UTC)
    except ValueError:
        return 300.0
    return max(1.0, (when - timezone.now()).total_seconds())


def _read_limited(response: requests.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ConnectorError(f"The feed is larger than {limit} bytes; it was not read.")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_feed(source: ListeningSource) -> PostPage:
    cursor = dict(source.cursor or {})
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if cursor.get("etag"):
        headers["If-None-Match"] = str(cursor["etag"])
    if cursor.get("modified"):
        headers["If-Modified-Since"] = str(cursor["modified"])
    timeout = settings.LISTENING_FEED_TIMEOUT
    try:
        with requests.get(source.url, headers=headers, timeout=(min(10, timeout), timeout), stream=True) as response:
            status = response.status_code
            if status == 304:
                return PostPage(posts=[], cursor=cursor)
            if status == 429 or (status == 503 and response.headers.get("Retry-After")):
                raise ChannelRateLimited(
                    f"The feed's server asked us to slow down (HTTP {status}).", retry_after=_retry_after(response)
                )
            if status >= 500:
                raise ChannelUnavailable(f"The feed's server answered HTTP {status}; it is retried later.")
            if status in (401, 403):
                raise ConnectorError(f"The feed refused access (HTTP {status}): is it public, is the address right?")
            if status in (404, 410):
                raise ConnectorError(f"No feed at this address (HTTP {status}): check the feed's address.")
            if status >= 400:
                raise ConnectorError(f"The feed answered HTTP {status}.")
            body = _read_limited(response, settings.LISTENING_FEED_MAX_BYTES)
            response_headers = {
                "content-type": response.headers.get("Content-Type", ""),
                "content-location": response.url,
            }
            etag, modified = response.headers.get("ETag", ""), response.headers.get("Last-Modified", "")
    except requests.Timeout:
        raise ChannelUnavailable(f"The feed did not answer within {timeout} seconds.") from None
    except requests.RequestException as exc:
        raise ChannelUnavailable(f"The feed could not be reached: {exc.__class__.__name__}: {exc}") from None
    parsed = feedparser.parse(body, response_headers=response_headers)
    problem = ""
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        # A declared charset that differs from the real one is fixed by feedparser itself: not worth a warning.
        if not isinstance(exc, feedparser.CharacterEncodingOverride):
            problem = f"The feed is not well-formed ({exc.__class__.__name__}: {exc})"
    entries = parsed.get("entries") or []
    if problem and not entries:
        raise ConnectorError(f"{problem}; no entry could be read.")
    now = timezone.now()
    channel = _channel(source)
    feed_lang = str((parsed.get("feed") or {}).get("language") or "")
    posts = []
    for entry in entries[:MAX_ENTRIES]:
        post = entry_post(entry, channel=channel, feed_lang=feed_lang, now=now)
        if post is not None:
            posts.append(post)
    new_cursor = {k: v for k, v in (("etag", etag), ("modified", modified)) if v}
    if problem:
        return WarnedPostPage(posts=posts, cursor=new_cursor, warning=f"{problem}; {len(posts)} entries kept.")
    return PostPage(posts=posts, cursor=new_cursor)


register_source_fetcher(ListeningSource.Kind.RSS, fetch_feed)
