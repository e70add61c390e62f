"""REST endpoints for the signed-in user, users, teams and notifications."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Notification, Team, User
from accounts.selectors import notification_list, team_list, user_list
from accounts.services import notifications_mark_read


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name", "email", "role"]
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "description"]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "level", "message", "url", "created_at", "read_at"]
        read_only_fields = fields


class UserViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = UserSerializer
    queryset = User.objects.none()  # for the schema; requests use get_queryset
    filterset_fields = ["role"]

    def get_queryset(self):  # type: ignore[override]
        return user_list(actor=self.request.user).order_by("id")

    @action(detail=False, methods=["get"])
    def me(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)


class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = TeamSerializer
    queryset = Team.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):  # type: ignore[override]
        return team_list(actor=self.request.user)


class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = NotificationSerializer

    def get_queryset(self):  # type: ignore[override]
        return notification_list(user=self.request.user)

    @extend_schema(
        request=None,
        responses=inline_serializer("NotificationsMarkedRead", fields={"marked_read": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"])
    def read(self, request: Request) -> Response:
        return Response({"marked_read": notifications_mark_read(user=request.user)})
