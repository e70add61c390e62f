"""API: duplicate review queue, merge and unmerge. Thin: validate, call a selector or service, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from contacts import selectors
from contacts.models import DuplicateCandidate, MergeRecord
from contacts.selectors import duplicates as dup_selectors
from contacts.services import duplicates as dup_services
from contacts.services.merge import contact_merge, contact_unmerge
from crm.api import CursorPagination
from crm.errors import NotFound


class DuplicateContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    company = serializers.CharField(source="company.name", default=None, allow_null=True)
    identities = serializers.SerializerMethodField()

    def get_identities(self, contact: Any) -> list[str]:
        return [i.value for i in contact.identities.all()]


class DuplicateCandidateSerializer(serializers.ModelSerializer):
    contact_a = DuplicateContactSerializer()
    contact_b = DuplicateContactSerializer()

    class Meta:
        model = DuplicateCandidate
        fields = ["id", "contact_a", "contact_b", "strength", "reason", "score", "status", "found_at"]


class MergeRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = MergeRecord
        fields = [
            "id", "primary", "duplicate_id_was", "primary_snapshot", "duplicate_snapshot", "moved", "conflicts",
            "actor", "created_at", "unmerged_at", "unmerged_by",
        ]  # fmt: skip
        read_only_fields = fields


class MergeRequestSerializer(serializers.Serializer):
    primary = serializers.IntegerField(help_text="The contact that survives.")
    duplicate = serializers.IntegerField(help_text="The contact merged into it and then deleted.")


class UnmergeResultSerializer(serializers.Serializer):
    primary = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    record = MergeRecordSerializer()


class DuplicatePagination(CursorPagination):
    ordering = ("-score", "-id")


class DuplicateCandidateViewSet(viewsets.ReadOnlyModelViewSet):
    """Open duplicate pairs whose two contacts the caller may see, strongest first. Managers and admins only."""

    serializer_class = DuplicateCandidateSerializer
    pagination_class = DuplicatePagination
    queryset = DuplicateCandidate.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        return dup_selectors.duplicate_list(user=self.request.user)

    def get_object(self) -> DuplicateCandidate:
        return dup_selectors.duplicate_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(request=None, responses={200: DuplicateCandidateSerializer})
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        candidate = dup_services.duplicate_dismiss(candidate=self.get_object(), actor=request.user)
        return Response(
            DuplicateCandidateSerializer(dup_selectors.duplicate_get(user=request.user, pk=candidate.pk)).data
        )

    @extend_schema(
        request=None, responses={202: inline_serializer("DuplicateScanStarted", {"detail": serializers.CharField()})}
    )
    @action(detail=False, methods=["post"])
    def scan(self, request: Request) -> Response:
        if not dup_selectors.can_review_duplicates(request.user):
            raise NotFound("Not found.")
        dup_services.duplicates_scan_enqueue(actor=request.user)
        return Response({"detail": "Duplicate scan started."}, status=status.HTTP_202_ACCEPTED)


class ContactMergeViewSet(viewsets.GenericViewSet):
    """POST {primary, duplicate}: merge ``duplicate`` into ``primary`` (both must be visible)."""

    serializer_class = MergeRequestSerializer
    queryset = MergeRecord.objects.none()

    @extend_schema(request=MergeRequestSerializer, responses={201: MergeRecordSerializer})
    def create(self, request: Request) -> Response:
        serializer = MergeRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = serializer.validated_data
        if ids["primary"] == ids["duplicate"]:
            # Checked before the lookups so the error names the real problem, not a missing contact.
            primary = duplicate = selectors.contact_get(user=request.user, pk=ids["primary"])
        else:
            primary = selectors.contact_get(user=request.user, pk=ids["primary"])
            duplicate = selectors.contact_get(user=request.user, pk=ids["duplicate"])
        record = contact_merge(primary=primary, duplicate=duplicate, actor=request.user)
        return Response(MergeRecordSerializer(record).data, status=status.HTTP_201_CREATED)


class MergeRecordViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Merges whose surviving contact the caller may see; ``unmerge`` undoes one."""

    serializer_class = MergeRecordSerializer
    queryset = MergeRecord.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        return dup_selectors.merge_record_list(user=self.request.user)

    def get_object(self) -> MergeRecord:
        return dup_selectors.merge_record_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(request=None, responses={200: UnmergeResultSerializer})
    @action(detail=True, methods=["post"])
    def unmerge(self, request: Request, pk: str | None = None) -> Response:
        record = self.get_object()
        primary, duplicate = contact_unmerge(record=record, actor=request.user)
        record.refresh_from_db()
        return Response(
            {"primary": primary.pk, "duplicate": duplicate.pk, "record": MergeRecordSerializer(record).data}
        )


def register(router: DefaultRouter) -> None:
    """Register this area's viewsets on the /api/v1/ router (called from contacts.api.register_routes)."""
    router.register("duplicates", DuplicateCandidateViewSet, basename="duplicate")
    router.register("contacts/merge", ContactMergeViewSet, basename="contact-merge")
    router.register("merges", MergeRecordViewSet, basename="merge")
