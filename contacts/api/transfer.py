"""API: CSV import wizard, CSV and vCard export, GDPR export and erasure."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from contacts import selectors
from contacts.filters import ContactFilter
from contacts.models import Contact, ErasureRecord, ImportJob, ImportRowError
from contacts.selectors.imports import import_job_get, import_job_list
from contacts.services import exports, gdpr
from contacts.services import imports as import_services
from crm.api import CursorPagination
from crm.errors import DomainError


class CSVRenderer(renderers.BaseRenderer):
    """Lets clients ask for ``Accept: text/csv``; the views stream the body themselves."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> Any:
        return data


class VCardRenderer(CSVRenderer):
    media_type = "text/vcard"
    format = "vcf"


class ImportJobSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "file_name", "file_sha256", "encoding", "delimiter", "headers", "mapping", "on_duplicate", "status",
            "total_rows", "next_row", "progress_percent", "created_count", "updated_count", "skipped_count",
            "error_count", "error", "owner", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A CSV file with a header row.")


class ImportStartSerializer(serializers.Serializer):
    mapping = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        help_text='CSV header -> target: a contact field ("first_name"), "identity:<kind>", "custom:<key>" or "".',
    )
    on_duplicate = serializers.ChoiceField(choices=ImportJob.OnDuplicate.choices)


class ImportRowErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportRowError
        fields = ["row_number", "errors", "raw"]


class RowErrorPagination(CursorPagination):
    ordering = "row_number"


class ImportJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """CSV imports: upload (creates a draft with guessed mapping), preview, start, poll, download the errors."""

    serializer_class = ImportJobSerializer
    queryset = ImportJob.objects.none()
    lookup_value_regex = r"\d+"
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):  # type: ignore[override]
        return import_job_list(user=self.request.user)

    def get_object(self) -> ImportJob:
        return import_job_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(request={"multipart/form-data": ImportUploadSerializer}, responses={201: ImportJobSerializer})
    def create(self, request: Request) -> Response:
        serializer = ImportUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        max_bytes = settings.IMPORT_MAX_BYTES
        if upload.size and upload.size > max_bytes:
            raise DomainError(f"The file is larger than {max_bytes // 1_048_576} MB.", code="file_too_large")
        job = import_services.import_job_create(actor=request.user, file_name=upload.name, data=upload.read())
        return Response(ImportJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ImportStartSerializer,
        responses={
            200: inline_serializer(
                "ImportPreview",
                {
                    "rows": inline_serializer(
                        "ImportPreviewRow",
                        {
                            "row_number": serializers.IntegerField(),
                            "ok": serializers.BooleanField(),
                            "errors": serializers.DictField(),
                            "raw": serializers.DictField(),
                        },
                        many=True,
                    )
                },
            )
        },
    )
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """The first 10 rows validated with the given mapping (nothing is written)."""
        job = import_job_get(user=request.user, pk=int(pk or 0), with_data=True)
        mapping = request.data.get("mapping") or job.mapping
        rows = import_services.import_preview(job=job, mapping=mapping if isinstance(mapping, dict) else job.mapping)
        return Response({"rows": [
            {"row_number": r.number, "ok": not r.errors, "errors": r.errors, "raw": r.raw} for r in rows
        ]})  # fmt: skip

    @extend_schema(request=ImportStartSerializer, responses={202: ImportJobSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        serializer = ImportStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = import_services.import_job_start(job=job, actor=request.user, **serializer.validated_data)
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: ImportRowErrorSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="row-errors")
    def row_errors(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        paginator = RowErrorPagination()
        page = paginator.paginate_queryset(job.row_errors.only("row_number", "errors", "raw"), request, view=self)
        return paginator.get_paginated_response(ImportRowErrorSerializer(page, many=True).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], url_path="error-report", renderer_classes=[CSVRenderer])
    def error_report(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        job = self.get_object()
        response = StreamingHttpResponse(import_services.import_error_report(job=job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response


class ContactExportViewSet(viewsets.GenericViewSet):
    """CSV of the visible contacts, filtered like GET /contacts/; vCard of one contact."""

    queryset = Contact.objects.none()
    filterset_class = None
    lookup_value_regex = r"\d+"
    renderer_classes = [CSVRenderer, renderers.JSONRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Search text"),
            *(OpenApiParameter(name, str) for name in ContactFilter.base_filters),
        ],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def list(self, request: Request) -> StreamingHttpResponse:
        q = request.query_params.get("q", "").strip()[:200]
        base = selectors.contact_list(user=request.user, filters={"q": q})
        contacts = ContactFilter(request.query_params or None, queryset=base, request=request).qs
        response = StreamingHttpResponse(exports.contacts_csv(contacts=contacts), content_type="text/csv")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="contacts-{stamp}.csv"'
        return response

    @extend_schema(responses={(200, "text/vcard"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], renderer_classes=[VCardRenderer, renderers.JSONRenderer])
    def vcard(self, request: Request, pk: str | None = None) -> HttpResponse:
        contact = selectors.contact_get(user=request.user, pk=int(pk or 0))
        response = HttpResponse(exports.contact_vcard(contact=contact), content_type="text/vcard; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}.vcf"'
        return response


class ErasureRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = ErasureRecord
        fields = ["id", "contact_id_was", "counts", "actor", "reason", "created_at"]


class PersonEraseSerializer(serializers.Serializer):
    confirm_name = serializers.CharField(help_text="The person's display name, typed to confirm.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class PersonDataViewSet(viewsets.GenericViewSet):
    """GDPR: export everything held about a person (owner, managers, admins); erase them (managers, admins)."""

    queryset = Contact.objects.none()
    lookup_value_regex = r"\d+"

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> Response:
        contact = selectors.contact_get(user=request.user, pk=int(pk or 0))
        return Response(gdpr.person_export(contact=contact, actor=request.user))

    @extend_schema(
        request=PersonEraseSerializer,
        responses={201: ErasureRecordSerializer, 403: OpenApiResponse(description="Not a manager or admin.")},
    )
    @action(detail=True, methods=["post"])
    def erase(self, request: Request, pk: str | None = None) -> Response:
        contact = selectors.contact_get(user=request.user, pk=int(pk or 0))
        serializer = PersonEraseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        typed = " ".join(serializer.validated_data["confirm_name"].split()).lower()
        if gdpr.can_erase_person(request.user) and typed != " ".join(contact.display_name.split()).lower():
            raise DomainError("confirm_name does not match the person's name.", fields={"confirm_name": ["No match."]})
        record = gdpr.person_erase(
            contact=contact, actor=request.user, reason=serializer.validated_data.get("reason", "")
        )
        return Response(ErasureRecordSerializer(record).data, status=status.HTTP_201_CREATED)


def register(router: DefaultRouter) -> None:
    """Register this area's viewsets on the /api/v1/ router (called from contacts.api.register_routes)."""
    router.register("imports", ImportJobViewSet, basename="import")
    router.register("contact-exports", ContactExportViewSet, basename="contact-export")
    router.register("person-data", PersonDataViewSet, basename="person-data")
