"""Contact and company pages. Views only parse input and call selectors/services."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from contacts import selectors, services
from contacts.filters import ContactFilter
from contacts.forms import IdentityForm
from contacts.selectors.saved_views import saved_view_list
from contacts.selectors.timeline import company_timeline
from crm.errors import DomainError

PAGE_SIZE = 50


def _keyset_page(qs, request: HttpRequest):  # type: ignore[no-untyped-def]
    """Newest first, ``?after=<id>`` for the next page: no OFFSET, no COUNT(*)."""
    after = request.GET.get("after", "")
    if after.isdecimal():
        qs = qs.filter(pk__lt=int(after))
    rows = list(qs.order_by("-id")[: PAGE_SIZE + 1])
    next_after = rows[PAGE_SIZE - 1].pk if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], next_after


@login_required
def contact_list(request: HttpRequest) -> HttpResponse:
    # One ContactFilter serves this page, saved views and the API, so a filter means the same everywhere.
    q = request.GET.get("q", "").strip()[:200]
    base = selectors.contact_list(user=request.user, filters={"q": q})
    contact_filter = ContactFilter(request.GET or None, queryset=base, request=request)
    rows, next_after = _keyset_page(contact_filter.qs, request)
    query = request.GET.copy()
    query.pop("after", None)
    saved_views = list(saved_view_list(user=request.user))
    for view in saved_views:
        view.querystring = urlencode(view.filters, doseq=True)  # type: ignore[attr-defined]
    context = {
        "filter": contact_filter, "form": contact_filter.form, "q": q, "contacts": rows, "next_after": next_after,
        "query": query.urlencode(), "saved_views": saved_views, "page_title": "Contacts",
    }  # fmt: skip
    template = "contacts/_contact_rows.html" if request.htmx and request.htmx.target == "contact-rows" else None
    return render(request, template or "contacts/contact_list.html", context)


@login_required
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contact = selectors.contact_get(user=request.user, pk=pk)
    return render(
        request,
        "contacts/contact_detail.html",
        {"contact": contact, "identity_form": IdentityForm(), "page_title": contact.display_name},
    )


@login_required
@require_POST
def identity_add(request: HttpRequest, pk: int) -> HttpResponse:
    contact = selectors.contact_get(user=request.user, pk=pk)
    form = IdentityForm(request.POST)
    if form.is_valid():
        try:
            services.identity_attach(contact=contact, actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error("value", exc.message)
        except ValidationError as exc:
            for message in exc.message_dict.get("value", exc.messages) if hasattr(exc, "error_dict") else exc.messages:
                form.add_error("value", message)
    if form.errors:
        if request.htmx:
            contact = selectors.contact_get(user=request.user, pk=pk)
            return render(request, "contacts/_identities.html", {"contact": contact, "identity_form": form})
        messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))
        return redirect("contacts:detail", pk=pk)
    messages.success(request, "Identity added.")
    if request.htmx:
        contact = selectors.contact_get(user=request.user, pk=pk)
        return render(request, "contacts/_identities.html", {"contact": contact, "identity_form": IdentityForm()})
    return redirect("contacts:detail", pk=pk)


@login_required
def company_list(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")[:200]
    rows, next_after = _keyset_page(selectors.company_list(user=request.user, filters={"q": q}), request)
    return render(
        request,
        "contacts/company_list.html",
        {"companies": rows, "next_after": next_after, "q": q, "page_title": "Companies"},
    )


@login_required
def company_detail(request: HttpRequest, pk: int) -> HttpResponse:
    company = selectors.company_get(user=request.user, pk=pk)
    people = selectors.company_contacts(user=request.user, company=company)[:200]
    context = {
        "company": company, "people": people, "page_title": company.name,
        "timeline": company_timeline(user=request.user, company=company, before=None),
        "timeline_url": reverse("contacts:company_timeline", args=[company.pk]), "show_contact": True,
    }  # fmt: skip
    return render(request, "contacts/company_detail.html", context)
