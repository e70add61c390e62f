"""Pages: CSV import wizard, CSV and vCard export, GDPR export and erasure."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from contacts import selectors
from contacts.filters import ContactFilter
from contacts.models import Contact, ImportJob
from contacts.selectors.imports import import_job_get, import_job_list, import_row_errors
from contacts.services import exports, gdpr
from contacts.services import imports as import_services
from crm.errors import DomainError


def _max_mb() -> int:
    return int(settings.IMPORT_MAX_BYTES / 1_048_576)


def _job(request: HttpRequest, pk: int, *, with_data: bool = False) -> ImportJob:
    return import_job_get(user=request.user, pk=pk, with_data=with_data)


def _contact(request: HttpRequest, pk: int) -> Contact:
    return selectors.contact_get(user=request.user, pk=pk)


# --- Import wizard ---


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        max_bytes = settings.IMPORT_MAX_BYTES
        if upload is None:
            error = "Choose a CSV file to upload."
        elif upload.size and upload.size > max_bytes:
            error = f"The file is larger than {_max_mb()} MB. Split it into smaller files."
        else:
            try:
                job = import_services.import_job_create(
                    actor=request.user, file_name=upload.name or "upload.csv", data=upload.read()
                )
            except DomainError as exc:
                error = exc.message
            else:
                messages.success(request, f"Uploaded {job.file_name}: {job.total_rows:,} rows. Now map the columns.")
                return redirect("contacts:import_mapping", pk=job.pk)
    jobs = list(import_job_list(user=request.user)[:20])
    return render(
        request,
        "contacts/import_upload.html",
        {"jobs": jobs, "error": error, "max_mb": _max_mb(), "page_title": "Import contacts"},
        status=400 if error else 200,
    )


def _posted_mapping(request: HttpRequest, job: ImportJob) -> dict[str, str]:
    return {header: request.POST.get(f"map-{i}", "") for i, header in enumerate(job.headers)}


def _mapping_rows(job: ImportJob, mapping: dict[str, str]) -> list[dict[str, object]]:
    return [{"index": i, "header": h, "target": mapping.get(h, "")} for i, h in enumerate(job.headers)]


@login_required
@require_http_methods(["GET", "POST"])
def import_mapping(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk, with_data=True)
    if job.status != ImportJob.Status.DRAFT:
        return redirect("contacts:import_progress", pk=job.pk)
    mapping = dict(job.mapping)
    on_duplicate = job.on_duplicate
    errors: dict[str, list[str]] = {}
    error = ""
    if request.method == "POST":
        mapping = _posted_mapping(request, job)
        on_duplicate = request.POST.get("on_duplicate", "")
        try:
            import_services.import_job_start(job=job, actor=request.user, mapping=mapping, on_duplicate=on_duplicate)
        except DomainError as exc:
            error, errors = exc.message, exc.fields
        else:
            messages.success(request, f"Import of {job.file_name} started.")
            return redirect("contacts:import_progress", pk=job.pk)
    context = {
        "job": job, "rows": _mapping_rows(job, mapping), "targets": import_services.import_targets(),
        "preview": import_services.import_preview(job=job, mapping=mapping), "on_duplicate": on_duplicate,
        "on_duplicate_choices": ImportJob.OnDuplicate.choices, "error": error, "errors": errors,
        "cp1252": job.encoding == "cp1252", "page_title": f"Map columns · {job.file_name}",
    }  # fmt: skip
    return render(request, "contacts/import_mapping.html", context, status=400 if error else 200)


@login_required
@require_POST
def import_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The preview table re-validated with the mapping being edited (htmx, on every select change)."""
    job = _job(request, pk, with_data=True)
    if job.status != ImportJob.Status.DRAFT:
        raise Http404("This import has started.")
    preview = import_services.import_preview(job=job, mapping=_posted_mapping(request, job))
    return render(request, "contacts/import_preview_rows.html", {"job": job, "preview": preview})


@login_required
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    context = {"job": job, "row_errors": import_row_errors(job=job), "page_title": f"Import · {job.file_name}"}
    if request.htmx:
        return render(request, "contacts/import_status.html", context)
    return render(request, "contacts/import_progress.html", context)


@login_required
def import_error_report(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    job = _job(request, pk)
    response = StreamingHttpResponse(import_services.import_error_report(job=job), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response


# --- Exports ---


@login_required
def contact_export_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The contact list as CSV, filtered exactly like the list page (same GET parameters, same ContactFilter)."""
    q = request.GET.get("q", "").strip()[:200]
    base = selectors.contact_list(user=request.user, filters={"q": q})
    contacts = ContactFilter(request.GET or None, queryset=base, request=request).qs
    response = StreamingHttpResponse(exports.contacts_csv(contacts=contacts), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="contacts-{stamp}.csv"'
    return response


@login_required
def contact_vcard(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact(request, pk)
    response = HttpResponse(exports.contact_vcard(contact=contact), content_type="text/vcard; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}.vcf"'
    return response


# --- GDPR ---


@login_required
def gdpr_export(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact(request, pk)
    try:
        data = gdpr.person_export(contact=contact, actor=request.user)
    except gdpr.NotAllowed as exc:
        messages.error(request, exc.message)
        return redirect("contacts:detail", pk=pk)
    response = HttpResponse(json.dumps(data, cls=DjangoJSONEncoder, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="person-{contact.pk}.json"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def gdpr_erase(request: HttpRequest, pk: int) -> HttpResponse:
    contact = _contact(request, pk)
    if not gdpr.can_erase_person(request.user):
        messages.error(request, "Only managers and admins can erase a person. Ask your manager.")
        return redirect("contacts:detail", pk=pk)
    error = ""
    if request.method == "POST":
        typed = " ".join(request.POST.get("confirm_name", "").split())
        if typed.lower() != " ".join(contact.display_name.split()).lower():
            error = "The name you typed does not match. Nothing was erased."
        else:
            record = gdpr.person_erase(contact=contact, actor=request.user, reason=request.POST.get("reason", ""))
            messages.success(request, f"The person was erased (erasure record #{record.pk}).")
            return redirect("contacts:list")
    return render(
        request,
        "contacts/gdpr_erase.html",
        {"contact": contact, "error": error, "page_title": f"Erase {contact.display_name}"},
        status=400 if error else 200,
    )


# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = [
    path("contacts/import/", import_upload, name="import_upload"),
    path("contacts/import/<int:pk>/", import_mapping, name="import_mapping"),
    path("contacts/import/<int:pk>/preview/", import_preview, name="import_preview"),
    path("contacts/import/<int:pk>/progress/", import_progress, name="import_progress"),
    path("contacts/import/<int:pk>/errors.csv", import_error_report, name="import_errors"),
    path("contacts/export.csv", contact_export_csv, name="export_csv"),
    path("contacts/<int:pk>/vcard/", contact_vcard, name="vcard"),
    path("contacts/<int:pk>/gdpr/export/", gdpr_export, name="gdpr_export"),
    path("contacts/<int:pk>/gdpr/erase/", gdpr_erase, name="gdpr_erase"),
]
