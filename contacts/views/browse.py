"""Pages: the one search box, timeline partials, and saved contact-list views."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST

from contacts import selectors
from contacts.selectors.saved_views import saved_view_get
from contacts.selectors.search import global_search
from contacts.selectors.timeline import TimelinePage, company_timeline, contact_timeline
from contacts.services.saved_views import saved_view_create, saved_view_delete
from crm.errors import DomainError, NotFound

LIVE_LIMIT = 5
PAGE_LIMIT = 50


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")
    live = bool(request.htmx) and request.GET.get("live") == "1"
    results = global_search(user=request.user, query=q, limit=LIVE_LIMIT if live else PAGE_LIMIT)
    context = {"results": results, "q": results.query, "page_title": f"Search: {results.query}" if q else "Search"}
    return render(request, "contacts/search_live.html" if live else "contacts/search.html", context)


def _timeline_response(
    request: HttpRequest, page: TimelinePage, url: str, title: str, *, show_contact: bool = False
) -> HttpResponse:
    # htmx swaps the rows in place; a plain link (no JavaScript) gets a whole page.
    template = "contacts/_timeline_entries.html" if request.htmx else "contacts/_timeline_page.html"
    context = {"timeline": page, "timeline_url": url, "show_contact": show_contact, "page_title": title}
    return render(request, template, context)


@login_required
@require_GET
def contact_timeline_partial(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        contact = selectors.contact_get(user=request.user, pk=pk)
        page = contact_timeline(user=request.user, contact=contact, before=request.GET.get("before"))
    except NotFound:
        raise Http404("No such contact.") from None
    except DomainError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain")
    url = reverse("contacts:timeline", args=[pk])
    return _timeline_response(request, page, url, f"Timeline of {contact.display_name}")


@login_required
@require_GET
def company_timeline_partial(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        company = selectors.company_get(user=request.user, pk=pk)
        page = company_timeline(user=request.user, company=company, before=request.GET.get("before"))
    except NotFound:
        raise Http404("No such company.") from None
    except DomainError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain")
    url = reverse("contacts:company_timeline", args=[pk])
    return _timeline_response(request, page, url, f"Timeline of {company.name}", show_contact=True)


def _filters_from_query(query: str) -> dict[str, str | list[str]]:
    data = QueryDict(query)
    out: dict[str, str | list[str]] = {}
    for key in data:
        if key in ("after", "csrfmiddlewaretoken"):
            continue
        values = [v for v in data.getlist(key) if v.strip()]
        if values:
            out[key] = values[0] if len(values) == 1 else values
    return out


@login_required
@require_POST
def saved_view_create_view(request: HttpRequest) -> HttpResponse:
    filters = _filters_from_query(request.POST.get("query", ""))
    back = reverse("contacts:list") + (f"?{urlencode(filters, doseq=True)}" if filters else "")
    try:
        view = saved_view_create(
            owner=request.user, name=request.POST.get("name", ""), filters=filters,
            shared=request.POST.get("shared") in ("on", "true", "1"),
        )  # fmt: skip
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    messages.success(request, f'Saved the view "{view.name}"{" and shared it with your teams" if view.shared else ""}.')
    return redirect(back)


@login_required
@require_POST
def saved_view_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        view = saved_view_get(user=request.user, pk=pk)
        saved_view_delete(saved_view=view, actor=request.user)
    except NotFound:
        raise Http404("No such saved view.") from None
    messages.success(request, f'Deleted the view "{view.name}".')
    return redirect("contacts:list")


# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = [
    path("search/", search, name="search"),
    path("contacts/<int:pk>/timeline/", contact_timeline_partial, name="timeline"),
    path("companies/<int:pk>/timeline/", company_timeline_partial, name="company_timeline"),
    path("contacts/views/", saved_view_create_view, name="saved_view_create"),
    path("contacts/views/<int:pk>/delete/", saved_view_delete_view, name="saved_view_delete"),
]
