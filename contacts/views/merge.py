"""Pages: the duplicate review queue, the merge confirmation page, the merge record with its "Undo merge"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from contacts import selectors
from contacts.models import Contact, MergeRecord
from contacts.selectors import duplicates as dup_selectors
from contacts.services import duplicates as dup_services
from contacts.services.merge import contact_merge, contact_unmerge
from crm.errors import Conflict, DomainError, NotFound


@login_required
def duplicate_list(request: HttpRequest) -> HttpResponse:
    """Open pairs, strongest first, both contacts side by side; managers and admins only (others get 404)."""
    try:
        rows, next_after = dup_selectors.duplicate_queue(user=request.user, after=request.GET.get("after"))
    except NotFound:
        raise  # a rep: 404, not the flash below
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("contacts:duplicate_list")
    return render(
        request,
        "contacts/duplicate_list.html",
        {"candidates": rows, "next_after": next_after, "page_title": "Duplicate review"},
    )


@login_required
@require_POST
def duplicate_scan(request: HttpRequest) -> HttpResponse:
    if not dup_selectors.can_review_duplicates(request.user):
        raise Http404("No such page.")
    dup_services.duplicates_scan_enqueue(actor=request.user)
    messages.success(request, "Duplicate scan started. New pairs appear here when it finishes.")
    return redirect("contacts:duplicate_list")


@login_required
@require_POST
def duplicate_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    candidate = dup_selectors.duplicate_get(user=request.user, pk=pk)
    try:
        dup_services.duplicate_dismiss(candidate=candidate, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Marked {candidate.contact_a} and {candidate.contact_b} as different people. They stay apart."
        )
    return redirect("contacts:duplicate_list")


def _other_id(request: HttpRequest) -> int | None:
    value = (request.POST.get("other") or request.GET.get("other") or "").strip().lstrip("#")
    return int(value) if value.isdecimal() else None


@login_required
def merge(request: HttpRequest, pk: int) -> HttpResponse:
    """Choose the other contact (by id or search), compare side by side, choose the survivor, confirm."""
    contact = selectors.contact_get(user=request.user, pk=pk)
    context: dict[str, object] = {"contact": contact, "page_title": f"Merge {contact.display_name}"}
    query = request.GET.get("q", "").strip()[:200]
    other_id = _other_id(request)
    if other_id is None and query.lstrip("#").isdecimal():
        other_id = int(query.lstrip("#"))
    if request.method == "POST":
        return _merge_post(request, contact, other_id)
    if other_id is None and query:
        ids = [i for i in selectors.contact_search_ids(user=request.user, query=query, limit=21) if i != contact.pk]
        results = list(selectors.contact_list(user=request.user).filter(pk__in=ids[:20]).order_by("last_name", "id"))
        context.update(q=query, results=results)
    elif other_id is not None:
        if other_id == contact.pk:
            messages.error(request, "A contact cannot be merged with itself. Choose a different contact.")
            return redirect("contacts:merge", pk=contact.pk)
        try:
            preview = dup_selectors.merge_preview(user=request.user, primary_id=contact.pk, duplicate_id=other_id)
            reverse = dup_selectors.merge_preview(user=request.user, primary_id=other_id, duplicate_id=contact.pk)
            context.update(preview=preview, merge_options=[preview, reverse])
        except NotFound:
            messages.error(request, f"There is no contact #{other_id} you can see.")
            return redirect("contacts:merge", pk=contact.pk)
    return render(request, "contacts/merge_form.html", context)


def _merge_post(request: HttpRequest, contact: Contact, other_id: int | None) -> HttpResponse:
    survivor = request.POST.get("survivor", "")
    if other_id is None or not survivor.isdecimal():
        messages.error(request, "Choose the other contact and which one to keep.")
        return redirect("contacts:merge", pk=contact.pk)
    ids = {contact.pk, other_id}
    keep = int(survivor)
    if keep not in ids:
        messages.error(request, "Keep one of the two contacts being merged.")
        return redirect("contacts:merge", pk=contact.pk)
    drop = (ids - {keep}).pop() if len(ids) == 2 else keep
    try:
        primary = selectors.contact_get(user=request.user, pk=keep)
        duplicate = selectors.contact_get(user=request.user, pk=drop)
        record = contact_merge(primary=primary, duplicate=duplicate, actor=request.user)
    except NotFound:
        raise Http404("No such contact.") from None
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("contacts:merge", pk=contact.pk)
    messages.success(request, f"Merged {duplicate.display_name} into {primary.display_name}. You can undo it here.")
    return redirect("contacts:merge_detail", pk=record.pk)


@login_required
def merge_detail(request: HttpRequest, pk: int) -> HttpResponse:
    record = dup_selectors.merge_record_get(user=request.user, pk=pk)
    return render(request, "contacts/merge_detail.html", _record_context(record))


def _record_context(record: MergeRecord, conflicts: list[str] | None = None) -> dict[str, object]:
    snap = record.duplicate_snapshot
    name = f"{snap.get('first_name', '')} {snap.get('last_name', '')}".strip() or f"Contact #{record.duplicate_id_was}"
    moved = record.moved
    return {
        "record": record,
        "duplicate_name": name,
        "moved_identities": moved.get("identities", {}).get("moved", []),
        "changed_fields": sorted(moved.get("fields", {}).get("fields", {})),
        "handler_keys": sorted(k for k in moved if k not in {"identities", "fields"}),
        "conflicts": conflicts or [],
        "page_title": f"Merge of {name}",
    }


@login_required
@require_POST
def unmerge(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        record = dup_selectors.merge_record_get(user=request.user, pk=pk)
        primary, duplicate = contact_unmerge(record=record, actor=request.user)
    except NotFound:
        raise Http404("No such merge.") from None
    except Conflict as exc:
        messages.error(request, exc.message.split(":")[0] + ".")
        record.refresh_from_db()
        context = _record_context(record, conflicts=exc.fields.get("conflicts", [exc.message]))
        return render(request, "contacts/merge_detail.html", context, status=409)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("contacts:merge_detail", pk=pk)
    messages.success(
        request, f"Merge undone: {duplicate.display_name} and {primary.display_name} are separate contacts again."
    )
    return redirect("contacts:merge_detail", pk=pk)


# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = [
    path("duplicates/", duplicate_list, name="duplicate_list"),
    path("duplicates/scan/", duplicate_scan, name="duplicate_scan"),
    path("duplicates/<int:pk>/dismiss/", duplicate_dismiss, name="duplicate_dismiss"),
    path("contacts/<int:pk>/merge/", merge, name="merge"),
    path("merges/<int:pk>/", merge_detail, name="merge_detail"),
    path("merges/<int:pk>/unmerge/", unmerge, name="unmerge"),
]
