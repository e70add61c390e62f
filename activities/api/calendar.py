"""API: touch prompts (list own, act on them), the calendar range, contact cadences and tier cadences."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from activities.models import Activity, ContactCadence, TierCadence, TouchPrompt
from activities.selectors import calendar as selectors
from activities.services import calendar as services
from contacts.models import Contact
from contacts.selectors import contact_get
from crm.errors import DomainError

MAX_RANGE = dt.timedelta(days=400)


class TouchPromptSerializer(serializers.ModelSerializer):
    # Plain strings: these choice sets share their field names with other models' enums in the schema.
    status = serializers.CharField(read_only=True, help_text="open, snoozed, done or dismissed")
    reason = serializers.CharField(read_only=True)
    contact_name = serializers.SerializerMethodField()

    class Meta:
        model = TouchPrompt
        fields = ["id", "contact", "contact_name", "owner", "cadence_days", "cadence_source", "last_touch_at",
                  "status", "snoozed_until", "activity", "reason", "created_at"]  # fmt: skip
        read_only_fields = fields

    def get_contact_name(self, prompt: TouchPrompt) -> str:
        return str(prompt.contact)


class SnoozeSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=services.MAX_SNOOZE_DAYS)


class CalendarActivitySerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    priority = serializers.CharField(read_only=True)
    ends_at = serializers.SerializerMethodField()

    class Meta:
        model = Activity
        fields = ["id", "kind", "subject", "status", "due_at", "ends_at", "duration_minutes", "location", "contact",
                  "owner", "priority"]  # fmt: skip
        read_only_fields = fields

    def get_ends_at(self, activity: Activity) -> dt.datetime | None:
        return services.activity_end(activity) if activity.due_at else None


class ContactCadenceSerializer(serializers.ModelSerializer):
    contact = serializers.IntegerField(source="contact_id")
    days = serializers.IntegerField(min_value=1, max_value=3650)

    class Meta:
        model = ContactCadence
        fields = ["id", "contact", "days", "source", "updated_at"]
        read_only_fields = ["id", "source", "updated_at"]


class TierCadenceSerializer(serializers.ModelSerializer):
    tier = serializers.ChoiceField(choices=[("", "Blank"), *Contact.Tier.choices], allow_blank=True)
    days = serializers.IntegerField(min_value=1, max_value=3650)

    class Meta:
        model = TierCadence
        fields = ["id", "tier", "days"]
        read_only_fields = ["id"]


class TouchPromptViewSet(viewsets.ReadOnlyModelViewSet):
    """The caller's own touch prompts (``?status=open|snoozed|done|dismissed``, default open)."""

    serializer_class = TouchPromptSerializer
    queryset = TouchPrompt.objects.none()
    lookup_value_regex = r"\d+"
    filter_backends: list[Any] = []

    def get_queryset(self):  # type: ignore[override]
        wanted = self.request.query_params.get("status", TouchPrompt.Status.OPEN)
        if wanted not in TouchPrompt.Status.values:
            raise DomainError(f"Unknown status “{wanted[:20]}”.", fields={"status": ["Unknown status."]})
        return selectors.touch_prompt_list(user=self.request.user, status=wanted).order_by("-id")

    def get_object(self) -> TouchPrompt:
        return selectors.touch_prompt_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=TouchPrompt.Status.values, description="Default: open")]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=None,
        responses={201: inline_serializer("PromptActivity", {"activity": serializers.IntegerField()})},
    )
    @action(detail=True, methods=["post"], url_path="to-activity")
    def to_activity(self, request: Request, pk: str | None = None) -> Response:
        activity = services.touch_prompt_to_activity(prompt=self.get_object(), actor=request.user)
        return Response({"activity": activity.pk}, status=status.HTTP_201_CREATED)

    @extend_schema(request=SnoozeSerializer, responses={200: TouchPromptSerializer})
    @action(detail=True, methods=["post"])
    def snooze(self, request: Request, pk: str | None = None) -> Response:
        data = SnoozeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt = services.touch_prompt_snooze(
            prompt=self.get_object(), actor=request.user, days=data.validated_data["days"]
        )
        return Response(TouchPromptSerializer(prompt).data)

    @extend_schema(request=None, responses={200: TouchPromptSerializer})
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        prompt = services.touch_prompt_dismiss(prompt=self.get_object(), actor=request.user)
        return Response(TouchPromptSerializer(prompt).data)


def _parse_bound(raw: str, name: str) -> dt.datetime:
    try:
        if len(raw) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time.min, tzinfo=timezone.get_current_timezone())
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise DomainError(f"“{raw[:40]}” is not a date or date-time.", fields={name: ["ISO date expected."]}) from None
    return value if timezone.is_aware(value) else timezone.make_aware(value)


class CalendarViewSet(viewsets.ViewSet):
    """The caller's activities due in [start, end) (ISO dates or date-times, at most 400 days)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("start", str, required=True, description="ISO date or date-time (inclusive)"),
            OpenApiParameter("end", str, required=True, description="ISO date or date-time (exclusive)"),
        ],
        responses={200: CalendarActivitySerializer(many=True)},
    )
    def list(self, request: Request) -> Response:
        raw_start, raw_end = request.query_params.get("start", ""), request.query_params.get("end", "")
        missing = {n: ["Required."] for n, v in (("start", raw_start), ("end", raw_end)) if not v}
        if missing:
            raise DomainError("Give start and end.", fields=missing)
        start, end = _parse_bound(raw_start, "start"), _parse_bound(raw_end, "end")
        if end <= start or end - start > MAX_RANGE:
            raise DomainError("end must be after start, at most 400 days later.", fields={"end": ["Bad range."]})
        rows = selectors.calendar_activities(user=request.user, start=start, end=end)
        return Response(CalendarActivitySerializer(rows, many=True).data)


class ContactCadenceViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Cadences of visible contacts. POST sets an explicit one (replacing any learned one) for a visible contact."""

    serializer_class = ContactCadenceSerializer
    queryset = ContactCadence.objects.none()
    lookup_value_regex = r"\d+"
    filter_backends: list[Any] = []

    def get_queryset(self):  # type: ignore[override]
        return selectors.contact_cadence_list(user=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ContactCadenceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        contact = contact_get(user=request.user, pk=data.validated_data["contact_id"])
        cadence = services.contact_cadence_set(contact=contact, days=data.validated_data["days"], actor=request.user)
        return Response(ContactCadenceSerializer(cadence).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ContactCadence) -> None:
        services.contact_cadence_clear(contact=instance.contact, actor=self.request.user)


class IsAdminRoleOrReadOnly(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_admin_role)


class TierCadenceViewSet(viewsets.ModelViewSet):
    """Default cadence per contact tier. Everyone reads; admins write."""

    serializer_class = TierCadenceSerializer
    queryset = TierCadence.objects.order_by("tier")
    permission_classes = [permissions.IsAuthenticated, IsAdminRoleOrReadOnly]
    pagination_class = None
    lookup_value_regex = r"\d+"
    filter_backends: list[Any] = []
    http_method_names = ["get", "post", "put", "delete", "head", "options"]

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.tier_cadence_set(actor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        instance: TierCadence = serializer.instance  # type: ignore[assignment]
        if serializer.validated_data.get("tier", instance.tier) != instance.tier:
            raise DomainError("Change the days, not the tier; create another row for another tier.")
        serializer.instance = services.tier_cadence_set(
            tier=instance.tier, days=serializer.validated_data["days"], actor=self.request.user
        )

    def perform_destroy(self, instance: TierCadence) -> None:
        services.tier_cadence_delete(cadence=instance, actor=self.request.user)


def register(router: DefaultRouter) -> None:
    """Register this area's viewsets on the /api/v1/ router (called from activities.api.register_routes)."""
    router.register("touch-prompts", TouchPromptViewSet, basename="touch-prompt")
    router.register("calendar", CalendarViewSet, basename="calendar")
    router.register("cadences", ContactCadenceViewSet, basename="contact-cadence")
    router.register("tier-cadences", TierCadenceViewSet, basename="tier-cadence")
