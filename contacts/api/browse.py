"""API: the search box, timelines and saved views. Thin: parse, call a selector or service, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from contacts import selectors
from contacts.models import SavedView
from contacts.registry import TimelineEntry
from contacts.selectors.saved_views import saved_view_get, saved_view_list
from contacts.selectors.search import global_search
from contacts.selectors.timeline import TimelinePage, company_timeline, contact_timeline
from contacts.services.saved_views import saved_view_create, saved_view_delete

BEFORE = OpenApiParameter("before", str, description="The `next` cursor of the previous page.")
LIMIT = OpenApiParameter("limit", int, description="Entries per page (1-100, default 30).")


class TimelineEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    source = serializers.CharField()
    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    url = serializers.CharField()
    actor = serializers.CharField()
    extra = serializers.DictField()


class TimelinePageSerializer(serializers.Serializer):
    results = TimelineEntrySerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="Pass as ?before= for the next (older) page.")


def _page_response(page: TimelinePage) -> Response:
    entries: list[TimelineEntry] = page.entries
    return Response({"results": TimelineEntrySerializer(entries, many=True).data, "next": page.next})


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "")
    return int(raw) if raw.isdecimal() else 30


class ContactTimelineViewSet(viewsets.ViewSet):
    """A contact's timeline, newest first; invisible contacts are 404."""

    @extend_schema(parameters=[BEFORE, LIMIT], responses=TimelinePageSerializer)
    def list(self, request: Request, contact_pk: str) -> Response:
        contact = selectors.contact_get(user=request.user, pk=int(contact_pk))
        page = contact_timeline(
            user=request.user, contact=contact, before=request.query_params.get("before"), limit=_limit(request)
        )
        return _page_response(page)


class CompanyTimelineViewSet(viewsets.ViewSet):
    """A company's own changes plus the timelines of its people the caller may see."""

    @extend_schema(parameters=[BEFORE, LIMIT], responses=TimelinePageSerializer)
    def list(self, request: Request, company_pk: str) -> Response:
        company = selectors.company_get(user=request.user, pk=int(company_pk))
        page = company_timeline(
            user=request.user, company=company, before=request.query_params.get("before"), limit=_limit(request)
        )
        return _page_response(page)


class SavedViewSerializer(serializers.ModelSerializer):
    owner = serializers.PrimaryKeyRelatedField(read_only=True)
    filters = serializers.DictField(
        help_text="Contact-list filters: q, lifecycle_stage, tier, owner, team, tag, company, country, "
        "last_touch_after, last_touch_before, do_not_contact."
    )

    class Meta:
        model = SavedView
        fields = ["id", "name", "filters", "shared", "owner", "created_at"]
        read_only_fields = ["id", "owner", "created_at"]


class SavedViewViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Your saved contact-list views plus those your teammates share. Only the owner may delete one."""

    serializer_class = SavedViewSerializer
    queryset = SavedView.objects.none()
    filterset_class = None
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        return saved_view_list(user=self.request.user)

    def get_object(self) -> SavedView:
        return saved_view_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        view = saved_view_create(owner=request.user, **serializer.validated_data)
        return Response(self.get_serializer(view).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: SavedView) -> None:
        saved_view_delete(saved_view=instance, actor=self.request.user)


class SearchViewSet(viewsets.ViewSet):
    """The search box: visible contacts and companies by name, e-mail, phone (any format), handle or company."""

    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True, description="What the user typed")],
        responses=inline_serializer(
            "SearchResults",
            {
                "contacts": inline_serializer(
                    "SearchContact",
                    {
                        "id": serializers.IntegerField(),
                        "display_name": serializers.CharField(),
                        "company": serializers.CharField(allow_null=True),
                        "email": serializers.CharField(allow_null=True),
                    },
                    many=True,
                ),
                "companies": inline_serializer(
                    "SearchCompany",
                    {
                        "id": serializers.IntegerField(),
                        "name": serializers.CharField(),
                        "domains": serializers.ListField(child=serializers.CharField()),
                    },
                    many=True,
                ),
            },
        ),
    )
    def list(self, request: Request) -> Response:
        results = global_search(user=request.user, query=request.query_params.get("q", ""), limit=50)
        return Response(
            {
                "contacts": [
                    {
                        "id": c.pk,
                        "display_name": c.display_name,
                        "company": c.company.name if c.company_id else None,
                        "email": c.emails[0].value if c.emails else None,
                    }
                    for c in results.contacts
                ],
                "companies": [{"id": c.pk, "name": c.name, "domains": c.domains} for c in results.companies],
            }
        )


def register(router: DefaultRouter) -> None:
    """Register this area's viewsets on the /api/v1/ router (called from contacts.api.register_routes)."""
    router.register(r"contacts/(?P<contact_pk>\d+)/timeline", ContactTimelineViewSet, basename="contact-timeline")
    router.register(r"companies/(?P<company_pk>\d+)/timeline", CompanyTimelineViewSet, basename="company-timeline")
    router.register("saved-views", SavedViewViewSet, basename="saved-view")
    router.register("search", SearchViewSet, basename="search")
