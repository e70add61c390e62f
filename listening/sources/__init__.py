"""Where listening's public posts come from: one fetcher per ListeningSource kind.

``fetch(source) → threads.connectors.PostPage`` returns the posts since ``source.cursor`` and the cursor the next
fetch starts from (committed with the posts by ``listening.services.sources.source_fetch``). A fetcher raises the
connector errors of ``threads.connectors`` (``ChannelRateLimited``, ``ChannelUnavailable``, ``ChannelAuthError``,
``ConnectorError``); the fetch service turns them into source state and back-off. A page may carry a ``warning``
(a malformed feed whose good entries were kept): it is shown as the source's last error, the posts are stored.

Fetchers register from ``listening.registrations``: ``rss`` here, ``twitter_search`` and ``facebook_page``
through the social connectors of threads. Webhook sources push their posts (``listening.api``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from threads.connectors import PostPage

if TYPE_CHECKING:
    from listening.models import ListeningSource

SourceFetcher = Callable[["ListeningSource"], PostPage]

_FETCHERS: dict[str, SourceFetcher] = {}


@dataclass
class WarnedPostPage(PostPage):
    """A page whose posts are good but whose fetch had something to say (a feed that is not well-formed)."""

    warning: str = ""


def register_source_fetcher(kind: str, fn: SourceFetcher) -> None:
    _FETCHERS[kind] = fn


def source_fetcher_for(kind: str) -> SourceFetcher | None:
    return _FETCHERS.get(kind)
