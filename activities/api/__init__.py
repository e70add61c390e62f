"""REST endpoints for activities, plans, runs and prompts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from accounts.models import User
from accounts.selectors import user_list
from activities import selectors, services
from activities.models import Activity
from contacts.models import Company, Contact
from contacts.selectors import company_get, contact_get
from crm.errors import NotFound


class ActivitySerializer(serializers.ModelSerializer):
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False)
    contact = serializers.PrimaryKeyRelatedField(queryset=Contact.objects.all(), required=False, allow_null=True)
    company = serializers.PrimaryKeyRelatedField(queryset=Company.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Activity
        fields = [
            "id", "kind", "subject", "notes", "contact", "company", "owner", "created_by", "due_at",
            "duration_minutes", "location", "priority", "status", "outcome", "done_at", "plan_run", "plan_step",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "created_by", "status", "outcome", "done_at", "plan_run", "plan_step", "created_at", "updated_at",
        ]  # fmt: skip

    def _visible(self, value: Any, getter: Any) -> Any:
        # A contact or company the caller cannot see is reported exactly like one that does not exist.
        if value is None:
            return None
        try:
            getter(user=self.context["request"].user, pk=value.pk)
        except NotFound:
            raise serializers.ValidationError(f'Invalid pk "{value.pk}" - object does not exist.') from None
        return value

    def validate_contact(self, value: Contact | None) -> Contact | None:
        return self._visible(value, contact_get)

    def validate_company(self, value: Company | None) -> Company | None:
        return self._visible(value, company_get)

    def validate_owner(self, value: User) -> User:
        if not user_list(actor=self.context["request"].user).filter(pk=value.pk).exists():
            raise serializers.ValidationError(f'Invalid pk "{value.pk}" - object does not exist.')
        return value


class CompleteSerializer(serializers.Serializer):
    outcome = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    notes = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)


class ReassignSerializer(serializers.Serializer):
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(is_active=True))


class ActivityViewSet(viewsets.ModelViewSet):
    """Activities the caller may see. Filters: status, kind, owner, contact, due_before, due_after."""

    serializer_class = ActivitySerializer
    queryset = Activity.objects.none()  # for the schema; requests use get_queryset
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        params = self.request.query_params
        filters = {k: params.get(k) for k in ("status", "kind", "owner", "contact", "due_before", "due_after")}
        for key in ("owner", "contact"):
            if filters[key] and not str(filters[key]).isdigit():
                raise serializers.ValidationError({key: ["Must be an id."]})
        return selectors.activity_list(user=self.request.user, filters={k: v for k, v in filters.items() if v})

    def get_object(self) -> Activity:
        return selectors.activity_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.activity_create(actor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        owner = data.pop("owner", None)
        activity = services.activity_update(activity=serializer.instance, actor=self.request.user, **data)
        if owner is not None and owner.pk != activity.owner_id:
            activity = services.activity_reassign(activity=activity, actor=self.request.user, owner=owner)
        serializer.instance = activity

    def perform_destroy(self, instance: Activity) -> None:
        services.activity_cancel(activity=instance, actor=self.request.user)

    @extend_schema(request=CompleteSerializer, responses={200: ActivitySerializer})
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        serializer = CompleteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        activity = services.activity_complete(
            activity=self.get_object(), actor=request.user, **serializer.validated_data
        )
        return Response(ActivitySerializer(activity, context={"request": request}).data)

    @extend_schema(request=None, responses={200: ActivitySerializer})
    @action(detail=True, methods=["post"])
    def skip(self, request: Request, pk: str | None = None) -> Response:
        activity = services.activity_skip(activity=self.get_object(), actor=request.user)
        return Response(ActivitySerializer(activity, context={"request": request}).data)

    @extend_schema(request=ReassignSerializer, responses={200: ActivitySerializer})
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str | None = None) -> Response:
        serializer = ReassignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        activity = services.activity_reassign(
            activity=self.get_object(), actor=request.user, owner=serializer.validated_data["owner"]
        )
        return Response(ActivitySerializer(activity, context={"request": request}).data, status=status.HTTP_200_OK)


def register_routes(router: DefaultRouter) -> None:
    """Every activities endpoint on the /api/v1/ router. Areas register their own viewsets."""
    from activities.api import calendar, plans

    router.register("activities", ActivityViewSet, basename="activity")
    for area in (plans, calendar):
        area.register(router)
