"""Sources that run through a connected social account: Twitter/X recent search and a Facebook page feed.

Both delegate to the post fetcher the threads connector registered for the kind
(``threads.connectors.post_fetcher_for(kind)(account, config, cursor)``), so nothing about a provider leaks here.

A search source without its own ``config["query"]`` searches for what its rules look for: the literal terms of
every active rule that applies to the source, each rule as ``to_x_query(rule.query)``, OR-joined into queries of
at most X's 512 characters (more rules, more queries). The provider pre-filters; the engine re-checks every post
with the full rule, so a loose search query costs only posts, never wrong mentions. Each query keeps its own
cursor (``since_id``), keyed by a hash of its text in ``source.cursor["queries"]``.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from listening.models import ListeningSource
from listening.query import QueryError, to_x_query
from listening.sources import WarnedPostPage, register_source_fetcher
from threads.connectors import ChannelAuthError, ConnectorError, PostPage, PublicPost, post_fetcher_for
from threads.models import ChannelAccount

log = logging.getLogger(__name__)

X_QUERY_MAX_CHARS = 512


def _account(source: ListeningSource) -> ChannelAccount:
    account = source.channel_account
    if account is None:
        raise ConnectorError("Choose the connected account this source runs through.")
    if account.status == ChannelAccount.Status.NEEDS_REAUTH:
        raise ChannelAuthError(f"{account.name} needs re-authentication.")
    if account.status == ChannelAccount.Status.PAUSED:
        raise ConnectorError(f"{account.name} is paused; resume it to fetch this source.")
    return account


def _fetcher(kind: str) -> Any:
    fetch = post_fetcher_for(kind)
    if fetch is None:
        raise ConnectorError(f"No connector for {kind} is installed yet.")
    return fetch


def rule_x_queries(source: ListeningSource) -> tuple[list[str], list[str]]:
    """The X search queries that cover the active rules applying to ``source``, and warnings about rules that
    could not be included (a query of its own longer than 512 characters, or no positive term)."""
    from listening.services.engine_cache import rule_specs

    # The same specs the engine compiles: a rule whose owner may not read this source is not searched for.
    rules = [
        (spec.rule_id, spec.query)
        for spec in rule_specs()
        if spec.include_posts
        and (not spec.source_ids or source.pk in spec.source_ids)
        and (not spec.channels or "twitter" in spec.channels)
    ]
    parts: list[str] = []
    warnings: list[str] = []
    for rule_id, query in rules:
        try:
            part = to_x_query(query).strip()
        except QueryError as exc:
            warnings.append(f"rule {rule_id}: {exc}")
            continue
        if not part:
            continue
        if len(part) + 2 > X_QUERY_MAX_CHARS:
            warnings.append(f"rule {rule_id}: its search is longer than {X_QUERY_MAX_CHARS} characters")
            continue
        parts.append(f"({part})")
    queries: list[str] = []
    current = ""
    for part in sorted(set(parts)):
        candidate = f"{current} OR {part}" if current else part
        if len(candidate) > X_QUERY_MAX_CHARS:
            queries.append(current)
            candidate = part
        current = candidate
    if current:
        queries.append(current)
    return queries, warnings


def _key(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def fetch_twitter_search(source: ListeningSource) -> PostPage:
    account = _account(source)
    fetch = _fetcher(source.kind)
    config = dict(source.config or {})
    own = str(config.get("query") or "").strip()
    queries, warnings = ([own], []) if own else rule_x_queries(source)
    if not queries:
        return WarnedPostPage(posts=[], cursor=dict(source.cursor or {}), warning="No rule applies to this source yet.")
    stored = (source.cursor or {}).get("queries") or {}
    cursors: dict[str, Any] = {}
    posts: dict[str, PublicPost] = {}
    more = False
    for query in queries:
        key = _key(query)
        page = fetch(account, {**config, "query": query}, dict(stored.get(key) or {}))
        cursors[key] = page.cursor
        more = more or page.more
        for post in page.posts:
            posts.setdefault(post.external_id, post)
    # Cursors of queries no longer asked (a rule changed) are dropped with them.
    cursor = {"queries": cursors}
    if warnings:
        return WarnedPostPage(posts=list(posts.values()), cursor=cursor, more=more, warning="; ".join(warnings)[:2000])
    return PostPage(posts=list(posts.values()), cursor=cursor, more=more)


def fetch_facebook_page(source: ListeningSource) -> PostPage:
    account = _account(source)
    return _fetcher(source.kind)(account, dict(source.config or {}), dict(source.cursor or {}))


register_source_fetcher(ListeningSource.Kind.TWITTER_SEARCH, fetch_twitter_search)
register_source_fetcher(ListeningSource.Kind.FACEBOOK_PAGE, fetch_facebook_page)
