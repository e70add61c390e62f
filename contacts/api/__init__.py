"""REST endpoints for contacts, companies and identities. Thin: validate, call a service or selector, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from accounts.models import Team, User
from contacts import selectors, services
from contacts.filters import CompanyFilter, ContactFilter
from contacts.models import Company, Contact, ContactIdentity


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = ContactIdentity
        fields = ["id", "kind", "value", "normalized", "handle", "label", "is_primary", "verified", "source"]
        read_only_fields = ["id", "normalized", "handle"]


class ContactSerializer(serializers.ModelSerializer):
    identities = IdentitySerializer(many=True, required=False)
    display_name = serializers.CharField(read_only=True)
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)
    company = serializers.PrimaryKeyRelatedField(queryset=Company.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Contact
        fields = [
            "id", "display_name", "first_name", "last_name", "title", "company", "lifecycle_stage", "tier", "tags",
            "street", "city", "region", "postal_code", "country", "latitude", "longitude", "time_zone", "language",
            "notes", "custom_fields", "birthday", "do_not_contact", "owner", "team", "visibility", "last_touch_at",
            "created_at", "updated_at", "identities",
        ]  # fmt: skip
        read_only_fields = ["id", "last_touch_at", "created_at", "updated_at"]

    def validate_company(self, company: Company | None) -> Company | None:
        # A company the caller cannot see is reported exactly like one that does not exist.
        if (
            company is not None
            and not selectors.company_list(user=self.context["request"].user).filter(pk=company.pk).exists()
        ):
            raise serializers.ValidationError(f'Invalid pk "{company.pk}" - object does not exist.')
        return company


class CompanySerializer(serializers.ModelSerializer):
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Company
        fields = [
            "id", "name", "domains", "industry", "size", "website", "street", "city", "region", "postal_code",
            "country", "tags", "notes", "owner", "team", "visibility", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]


class ContactViewSet(viewsets.ModelViewSet):
    """Contacts the caller may see. ``?q=`` searches names, companies, e-mails, phones and handles."""

    serializer_class = ContactSerializer
    filterset_class = ContactFilter
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        qs = selectors.contact_list(user=self.request.user, filters={"q": self.request.query_params.get("q", "")})
        return qs.prefetch_related("identities")

    def get_object(self) -> Contact:
        contact = selectors.contact_get(user=self.request.user, pk=int(self.kwargs["pk"]))
        self.check_object_permissions(self.request, contact)
        return contact

    @extend_schema(parameters=[OpenApiParameter("q", str, description="Search text")])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        identities = data.pop("identities", [])
        contact = services.contact_create(actor=request.user, identities=identities, **data)
        return Response(self.get_serializer(selectors.contact_get(user=request.user, pk=contact.pk)).data, status=201)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        contact = self.get_object()
        serializer = self.get_serializer(contact, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("identities", None)
        services.contact_update(contact=contact, actor=request.user, **data)
        return Response(self.get_serializer(selectors.contact_get(user=request.user, pk=contact.pk)).data)

    def perform_destroy(self, instance: Contact) -> None:
        services.contact_delete(contact=instance, actor=self.request.user)

    @extend_schema(request=IdentitySerializer, responses={201: IdentitySerializer})
    @action(detail=True, methods=["post"], url_path="identities")
    def add_identity(self, request: Request, pk: str | None = None) -> Response:
        contact = self.get_object()
        serializer = IdentitySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        identity = services.identity_attach(contact=contact, actor=request.user, **serializer.validated_data)
        return Response(IdentitySerializer(identity).data, status=status.HTTP_201_CREATED)


class CompanyViewSet(viewsets.ModelViewSet):
    serializer_class = CompanySerializer
    filterset_class = CompanyFilter
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        return selectors.company_list(user=self.request.user, filters={"q": self.request.query_params.get("q", "")})

    def get_object(self) -> Company:
        return selectors.company_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.company_create(actor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.company_update(
            company=serializer.instance, actor=self.request.user, **serializer.validated_data
        )

    def perform_destroy(self, instance: Company) -> None:
        services.company_delete(company=instance, actor=self.request.user)


def register_routes(router: DefaultRouter) -> None:
    """Every contacts endpoint on the /api/v1/ router. Areas register their own viewsets."""
    from contacts.api import browse, merge, profile, transfer

    router.register("contacts", ContactViewSet, basename="contact")
    router.register("companies", CompanyViewSet, basename="company")
    for area in (profile, merge, transfer, browse):
        area.register(router)
