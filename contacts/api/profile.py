"""API: relationships, introductions, life events, consent, custom field definitions.

Thin: validate input, call a service or selector, serialize. Visibility comes from the selectors.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from contacts import selectors
from contacts.models import Consent, Contact, CustomFieldDefinition, LifeEvent, Relationship
from contacts.selectors.consent import consent_list
from contacts.selectors.life_events import life_event_get, life_event_list
from contacts.selectors.relationships import introduction_paths, relationship_get, relationship_list
from contacts.services.consent import consent_set
from contacts.services.life_events import life_event_create, life_event_delete, life_event_update
from contacts.services.relationships import relationship_create, relationship_delete, relationship_update

CONTACT_FILTER = OpenApiParameter("contact", int, description="Only rows of this contact (either end for links).")


def _contact_filter(request: Request) -> int | None:
    raw = request.query_params.get("contact", "")
    if not raw:
        return None
    if not raw.isdecimal():
        raise serializers.ValidationError({"contact": ["Must be a contact id."]})
    return int(raw)


def _refuse_moved_ends(data: dict[str, Any], current: dict[str, Contact]) -> None:
    """Links and events stay on their contacts: moving one is a delete and a create, so history stays honest."""
    errors = {
        name: ["Cannot be changed; delete this and create a new one."]
        for name, contact in current.items()
        if name in data and data.pop(name) != contact
    }
    if errors:
        raise serializers.ValidationError(errors)


class VisibleContactField(serializers.PrimaryKeyRelatedField):
    """A contact id; an invisible contact is rejected exactly like a missing one."""

    def get_queryset(self) -> QuerySet[Contact]:
        return selectors.contact_list(user=self.context["request"].user)


class RelationshipSerializer(serializers.ModelSerializer):
    from_contact = VisibleContactField()
    to_contact = VisibleContactField()
    from_contact_name = serializers.CharField(source="from_contact.display_name", read_only=True)
    to_contact_name = serializers.CharField(source="to_contact.display_name", read_only=True)

    class Meta:
        model = Relationship
        fields = [
            "id", "from_contact", "from_contact_name", "to_contact", "to_contact_name", "kind", "strength", "notes",
            "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at"]
        validators: list[Any] = []  # the service reports duplicate edges, with a clear message


class RelationshipViewSet(viewsets.ModelViewSet):
    """Typed, directed links between contacts. Only links whose both ends you can see are listed."""

    serializer_class = RelationshipSerializer
    queryset = Relationship.objects.none()
    lookup_value_regex = r"\d+"
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Relationship]:  # type: ignore[override]
        return relationship_list(user=self.request.user, contact_id=_contact_filter(self.request))

    def get_object(self) -> Relationship:
        return relationship_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(parameters=[CONTACT_FILTER])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = relationship_create(actor=self.request.user, **serializer.validated_data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        relationship = self.get_object()
        serializer = self.get_serializer(relationship, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        _refuse_moved_ends(data, {"from_contact": relationship.from_contact, "to_contact": relationship.to_contact})
        relationship_update(relationship=relationship, actor=request.user, **data)
        return Response(self.get_serializer(relationship).data)

    def perform_destroy(self, instance: Relationship) -> None:
        relationship_delete(relationship=instance, actor=self.request.user)


class LifeEventSerializer(serializers.ModelSerializer):
    contact = VisibleContactField()

    class Meta:
        model = LifeEvent
        fields = ["id", "contact", "kind", "title", "date", "note", "source", "data", "created_at"]
        read_only_fields = ["id", "source", "data", "created_at"]


class LifeEventViewSet(viewsets.ModelViewSet):
    """Life events of contacts you can see. Automatic ones (``source=auto``) come from contact updates."""

    serializer_class = LifeEventSerializer
    queryset = LifeEvent.objects.none()
    lookup_value_regex = r"\d+"
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[LifeEvent]:  # type: ignore[override]
        return life_event_list(user=self.request.user, contact_id=_contact_filter(self.request))

    def get_object(self) -> LifeEvent:
        return life_event_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(parameters=[CONTACT_FILTER])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = life_event_create(actor=self.request.user, **serializer.validated_data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        event = self.get_object()
        serializer = self.get_serializer(event, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        _refuse_moved_ends(data, {"contact": event.contact})
        life_event_update(event=event, actor=request.user, **data)
        return Response(self.get_serializer(event).data)

    def perform_destroy(self, instance: LifeEvent) -> None:
        life_event_delete(event=instance, actor=self.request.user)


class ConsentSerializer(serializers.ModelSerializer):
    contact = VisibleContactField()

    class Meta:
        model = Consent
        fields = ["id", "contact", "channel", "status", "legal_basis", "source", "recorded_at"]
        read_only_fields = ["id", "recorded_at"]
        validators: list[Any] = []  # POST is an upsert on (contact, channel)


class ConsentViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Consent per channel. POST records the current consent of a (contact, channel): insert or update."""

    serializer_class = ConsentSerializer
    queryset = Consent.objects.none()
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Consent]:  # type: ignore[override]
        return consent_list(user=self.request.user, contact_id=_contact_filter(self.request))

    @extend_schema(parameters=[CONTACT_FILTER])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        consent = consent_set(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(consent).data, status=status.HTTP_201_CREATED)


class IsAdminRoleOrReadOnly(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_admin_role


class CustomFieldDefinitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomFieldDefinition
        fields = ["id", "key", "label", "field_type", "choices", "required", "help_text", "order", "is_active"]
        read_only_fields = ["id"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        field_type = attrs.get("field_type", getattr(self.instance, "field_type", None))
        choices = attrs.get("choices", getattr(self.instance, "choices", []))
        if field_type == CustomFieldDefinition.Type.CHOICE and not choices:
            raise serializers.ValidationError({"choices": ["A choice field needs at least one choice."]})
        return attrs


class CustomFieldDefinitionViewSet(viewsets.ModelViewSet):
    """The typed custom fields of every contact. Everyone reads them; only admins change them."""

    serializer_class = CustomFieldDefinitionSerializer
    queryset = CustomFieldDefinition.objects.all()
    permission_classes = [IsAdminRoleOrReadOnly]
    lookup_value_regex = r"\d+"
    filter_backends: list[Any] = []


class IntroductionContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()


class IntroductionPathSerializer(serializers.Serializer):
    """``contacts[0]`` is the introducer, ``contacts[-1]`` the target; ``kinds[i]`` links contacts i and i+1 and
    ``forward[i]`` says the stored link points from contact i to contact i+1."""

    hops = serializers.IntegerField()
    contacts = IntroductionContactSerializer(many=True)
    kinds = serializers.ListField(child=serializers.CharField())
    forward = serializers.ListField(child=serializers.BooleanField())


class IntroductionViewSet(viewsets.GenericViewSet):
    """Who can introduce you to a contact: the shortest paths (up to 3 hops) from contacts you or your team own."""

    queryset = Contact.objects.none()
    pagination_class = None
    filter_backends: list[Any] = []

    @extend_schema(
        parameters=[OpenApiParameter("contact_pk", int, OpenApiParameter.PATH, description="Target contact id")],
        responses=IntroductionPathSerializer(many=True),
    )
    def list(self, request: Request, contact_pk: str) -> Response:
        target = selectors.contact_get(user=request.user, pk=int(contact_pk))
        paths = introduction_paths(user=request.user, target=target)
        return Response(
            [
                {
                    "hops": p.hops,
                    "contacts": [{"id": c.pk, "display_name": c.display_name} for c in p.contacts],
                    "kinds": p.kinds,
                    "forward": p.forward,
                }
                for p in paths
            ]
        )


def register(router: DefaultRouter) -> None:
    """Register this area's viewsets on the /api/v1/ router (called from contacts.api.register_routes)."""
    router.register("relationships", RelationshipViewSet, basename="relationship")
    router.register("life-events", LifeEventViewSet, basename="life-event")
    router.register("consents", ConsentViewSet, basename="consent")
    router.register("custom-fields", CustomFieldDefinitionViewSet, basename="custom-field")
    router.register(
        r"contacts/(?P<contact_pk>\d+)/introductions", IntroductionViewSet, basename="contact-introductions"
    )
