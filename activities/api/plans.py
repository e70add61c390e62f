"""API: activity plans with nested steps, assignment with progress, and plan runs (pause/resume/cancel)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from accounts.models import Team, User
from accounts.selectors import team_list, user_list
from activities.models import ActivityPlan, Kind, PlanAssignment, PlanRun, PlanStep
from activities.selectors import plans as selectors
from activities.services import plans as services
from contacts.selectors.saved_views import saved_view_list
from crm.errors import DomainError, NotFound


class StepSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=64)
    # A plain string (validated by the service): an enum here would collide with ContactIdentity's "kind" enum.
    kind = serializers.CharField(max_length=16, default=Kind.CALL, help_text=f"One of: {', '.join(Kind.values)}.")
    subject_template = serializers.CharField(max_length=300)
    # Negative values pass through so the service answers with its message naming the step.
    offset_days = serializers.IntegerField(default=0)
    offset_from = serializers.ChoiceField(choices=PlanStep.OffsetFrom.choices, default=PlanStep.OffsetFrom.PREVIOUS)
    assignee_rule = serializers.ChoiceField(choices=PlanStep.Assignee.choices, default=PlanStep.Assignee.PLAN_ASSIGNEE)
    named_user = serializers.IntegerField(required=False, allow_null=True, default=None)
    next_step = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True, default=None)
    is_final = serializers.BooleanField(default=False)
    branches = serializers.DictField(child=serializers.CharField(max_length=64), required=False, default=dict)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return selectors.step_as_dict(instance) if isinstance(instance, PlanStep) else dict(instance)


class PlanSerializer(serializers.ModelSerializer):
    steps = StepSerializer(many=True)
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)
    holidays = serializers.ListField(child=serializers.DateField(), required=False, default=list)

    class Meta:
        model = ActivityPlan
        fields = ["id", "name", "description", "team", "working_days_only", "holidays", "is_active", "steps",
                  "created_at"]  # fmt: skip
        read_only_fields = ["id", "created_at"]

    def validate_team(self, team: Team | None) -> Team | None:
        if team is not None and not team_list(actor=self.context["request"].user).filter(pk=team.pk).exists():
            raise serializers.ValidationError(f'Invalid pk "{team.pk}" - object does not exist.')
        return team


class AssignmentSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = PlanAssignment
        fields = ["id", "plan", "assignee", "assigned_by", "saved_view", "start_on", "status", "total", "processed",
                  "created_runs", "skipped", "progress_percent", "error", "created_at", "finished_at"]  # fmt: skip
        read_only_fields = fields


class AssignInputSerializer(serializers.Serializer):
    assignee = serializers.IntegerField()
    contact_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=100_000)
    saved_view = serializers.IntegerField(required=False)
    start_on = serializers.DateField(required=False)


class PlanRunSerializer(serializers.ModelSerializer):
    current_step_key = serializers.CharField(source="current_step.key", read_only=True, default=None)

    class Meta:
        model = PlanRun
        fields = ["id", "plan", "assignment", "contact", "assignee", "current_step", "current_step_key", "status",
                  "started_on", "stop_reason", "created_at", "ended_at"]  # fmt: skip
        read_only_fields = fields


class PlanViewSet(viewsets.ModelViewSet):
    """Activity plans (managers and admins). ``steps`` is replaced as a whole on update. DELETE archives."""

    serializer_class = PlanSerializer
    queryset = ActivityPlan.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        return selectors.plan_list_with_steps(user=self.request.user)

    def get_object(self) -> ActivityPlan:
        return selectors.plan_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def _write(self, serializer: PlanSerializer, plan: ActivityPlan | None) -> ActivityPlan:
        data = dict(serializer.validated_data)
        if plan is None:
            data.pop("is_active", None)
            return services.plan_create(actor=self.request.user, **data)
        return services.plan_update(plan=plan, actor=self.request.user, **data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = self._write(serializer, None)
        return Response(self.get_serializer(self.get_queryset().get(pk=plan.pk)).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        plan = self.get_object()
        serializer = self.get_serializer(plan, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        self._write(serializer, plan)
        return Response(self.get_serializer(self.get_queryset().get(pk=plan.pk)).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        plan = self.get_object()
        services.plan_update(plan=plan, actor=request.user, is_active=False)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssignInputSerializer, responses={201: AssignmentSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """Assign the plan to an employee for ``contact_ids`` or a ``saved_view``; large targets run in the
        background (poll /plan-assignments/{id}/)."""
        plan = self.get_object()
        payload = AssignInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        assignee = user_list(actor=request.user).filter(pk=data["assignee"]).first()
        if assignee is None:
            raise DomainError("No such employee.", fields={"assignee": ["No such employee."]})
        target: dict[str, Any] = {}
        if "saved_view" in data:
            view = saved_view_list(user=request.user).filter(pk=data["saved_view"]).first()
            if view is None:
                raise NotFound("No such saved view.")
            target["saved_view"] = view
        if "contact_ids" in data:
            target["contact_ids"] = data["contact_ids"]
        assignment = services.plan_assign(
            plan=plan, actor=request.user, assignee=assignee, start_on=data.get("start_on"), **target
        )
        return Response(AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)


class PlanAssignmentViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Progress of one assignment."""

    serializer_class = AssignmentSerializer
    queryset = PlanAssignment.objects.none()
    lookup_value_regex = r"\d+"

    def get_object(self) -> PlanAssignment:
        return selectors.plan_assignment_get(user=self.request.user, pk=int(self.kwargs["pk"]))


@extend_schema(
    parameters=[
        OpenApiParameter("status", str, enum=PlanRun.Status.values),
        OpenApiParameter("plan", int),
        OpenApiParameter("contact", int),
        OpenApiParameter("assignee", int),
    ]
)
class PlanRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Plan runs the caller works or oversees, with pause, resume, cancel and reassign actions."""

    serializer_class = PlanRunSerializer
    queryset = PlanRun.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        params = self.request.query_params
        filters = {k: params[k] for k in ("status", "plan", "contact", "assignee") if params.get(k)}
        for key in ("plan", "contact", "assignee"):
            if key in filters and not str(filters[key]).isdigit():
                raise DomainError(f"'{key}' must be an id.", fields={key: ["Must be an id."]})
        return selectors.plan_run_list(user=self.request.user, filters=filters)

    def get_object(self) -> PlanRun:
        return selectors.plan_run_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def _act(self, fn: Any) -> Response:
        run = fn(run=self.get_object(), actor=self.request.user)
        return Response(PlanRunSerializer(run).data)

    @extend_schema(request=None, responses=PlanRunSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.plan_run_pause)

    @extend_schema(request=None, responses=PlanRunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.plan_run_resume)

    @extend_schema(request=None, responses=PlanRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.plan_run_cancel)

    @extend_schema(
        request=inline_serializer("PlanRunReassign", {"assignee": serializers.IntegerField()}),
        responses=PlanRunSerializer,
    )
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str | None = None) -> Response:
        assignee = _user(request, request.data.get("assignee"), "assignee")
        run = services.plan_run_reassign(run=self.get_object(), actor=request.user, assignee=assignee)
        return Response(PlanRunSerializer(run).data)

    @extend_schema(
        request=inline_serializer(
            "PlanRunsReassignAll", {"from_user": serializers.IntegerField(), "to_user": serializers.IntegerField()}
        ),
        responses=inline_serializer("PlanRunsReassigned", {"moved": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"], url_path="reassign-all")
    def reassign_all(self, request: Request) -> Response:
        """Move every live run of one employee (someone leaving the team) to another."""
        from_user = _user(request, request.data.get("from_user"), "from_user")
        to_user = _user(request, request.data.get("to_user"), "to_user")
        moved = services.plan_runs_reassign_all(from_user=from_user, to_user=to_user, actor=request.user)
        return Response({"moved": moved})


def _user(request: Request, value: Any, field: str) -> User:
    user = user_list(actor=request.user).filter(pk=value).first() if str(value or "").isdigit() else None
    if user is None:
        raise DomainError("No such employee.", fields={field: ["No such employee."]})
    return user


def register(router: DefaultRouter) -> None:
    """Register this area's viewsets on the /api/v1/ router (called from activities.api.register_routes)."""
    router.register("plans", PlanViewSet, basename="plan")
    router.register("plan-assignments", PlanAssignmentViewSet, basename="plan-assignment")
    router.register("plan-runs", PlanRunViewSet, basename="plan-run")
