"""The mentions feed: filters, newest first, keyset "older" pagination through the selector's opaque cursor."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from crm.errors import DomainError
from listening import selectors
from listening.forms import CHANNEL_LABELS, MentionFilterForm
from listening.models import Mention
from listening.views.highlight import highlight_segments
from listening.views.links import message_links, post_links

PAGE_SIZE = 50


def mention_rows(mentions: list[Mention]) -> list[dict[str, Any]]:
    """Each mention with its highlighted snippet, its link and its author, in two queries for the whole page."""
    messages_ = message_links([m.message_id for m in mentions if m.message_id])
    posts = post_links([m.post_id for m in mentions if m.post_id])
    rows = []
    for mention in mentions:
        target = messages_.get(mention.message_id, {}) if mention.message_id else posts.get(mention.post_id, {})
        rows.append(
            {
                "mention": mention, "segments": highlight_segments(mention.snippet, mention.highlights),
                "url": target.get("url", ""), "author": target.get("author", ""),
                "kind": "message" if mention.message_id else "post",
                "channel_label": CHANNEL_LABELS.get(mention.channel, mention.channel),
            }
        )  # fmt: skip
    return rows


@login_required
def mention_list(request: HttpRequest) -> HttpResponse:
    rules = list(selectors.rule_list(user=request.user))
    form = MentionFilterForm(request.GET or None, rules=rules)
    filters = form.filters() if request.GET else MentionFilterForm(rules=rules).filters()
    cursor = request.GET.get("cursor") or None
    try:
        page = selectors.mention_list(user=request.user, filters=filters, cursor=cursor, limit=PAGE_SIZE)
    except DomainError as exc:  # a tampered or stale cursor
        messages.error(request, exc.message)
        query = request.GET.copy()
        query.pop("cursor", None)
        return redirect(request.path + (f"?{query.urlencode()}" if query else ""))
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form, "rows": mention_rows(page.items), "next_cursor": page.next, "query": query.urlencode(),
        "filtered": any(v for k, v in request.GET.items() if k != "cursor"), "page_title": "Mentions",
        "tab": "mentions",
    }  # fmt: skip
    if request.htmx and cursor:
        return render(request, "listening/_mention_items.html", context)
    return render(request, "listening/mentions.html", context)
