"""Where a mention or a dry-run hit points: the message in its conversation, or the public post's own address.

One query per kind for a whole page (never one per row). The ids come from listening selectors and services,
which already applied visibility, so these lookups only add the link and the author's name.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from listening.models import Post
from threads.models import Message


def message_links(ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = Message.objects.filter(pk__in=ids).values("pk", "thread_id", "author_name", "author_address")
    links = {}
    for row in rows:
        thread_id = row["thread_id"]
        # A message still in the unmatched queue has no conversation yet: the queue is where it can be seen.
        if thread_id:
            url = reverse("threads:detail", args=[thread_id]) + f"#m{row['pk']}"
        else:
            url = reverse("threads:unmatched")
        links[row["pk"]] = {"url": url, "author": row["author_name"] or row["author_address"]}
    return links


def post_links(ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = Post.objects.filter(pk__in=ids).values("pk", "url", "author_name", "author_handle")
    return {
        row["pk"]: {
            "url": _safe_url(row["url"]),
            "author": row["author_name"] or (f"@{row['author_handle']}" if row["author_handle"] else ""),
        }
        for row in rows
    }


def _safe_url(url: str) -> str:
    """Only http(s) links: a feed could hand us ``javascript:`` and we would render it as a link."""
    return url if url.lower().startswith(("http://", "https://")) else ""
