"""Mentions: filtered, keyset-paginated, visibility and text hiding from listening.selectors."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from listening import selectors
from listening.api.common import CHANNEL_RE, paged, paged_schema
from listening.models import Mention


class MentionSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    kind = serializers.SerializerMethodField()
    contact = serializers.IntegerField(source="contact_id", read_only=True, allow_null=True)
    contact_name = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField(help_text="The public post's own address (posts only).")
    text_hidden = serializers.SerializerMethodField(help_text="A private mailbox's text, not shown to the caller.")

    class Meta:
        model = Mention
        fields = [
            "id", "rule", "rule_name", "kind", "post", "message", "contact", "contact_name", "channel", "snippet",
            "highlights", "matched_terms", "sentiment", "sentiment_score", "lang", "latitude", "longitude", "url",
            "text_hidden", "occurred_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_kind(self, mention: Mention) -> str:
        return "post" if mention.post_id else "message"

    def get_contact_name(self, mention: Mention) -> str | None:
        return mention.contact.display_name if mention.contact_id and mention.contact is not None else None

    def get_url(self, mention: Mention) -> str | None:
        url = mention.post.url if mention.post_id and mention.post is not None else ""
        return url if url.lower().startswith(("http://", "https://")) else None

    def get_text_hidden(self, mention: Mention) -> bool:
        return bool(getattr(mention, "text_hidden", False))


class MentionFilterSerializer(serializers.Serializer):
    rule = serializers.IntegerField(required=False, min_value=1)
    sentiment = serializers.ChoiceField(choices=Mention.Sentiment.choices, required=False)
    channel = serializers.RegexField(CHANNEL_RE, required=False)
    contact = serializers.RegexField(r"^(known|unknown|\d+)$", required=False)
    since = serializers.DateField(required=False)
    until = serializers.DateField(required=False)
    q = serializers.CharField(max_length=200, required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=selectors.MAX_LIMIT, default=50)


MENTION_PARAMS = [
    OpenApiParameter("rule", int, description="Mentions of this rule."),
    OpenApiParameter("sentiment", str, enum=Mention.Sentiment.values),
    OpenApiParameter("channel", str, description="twitter, facebook, email, blog, blog_comment …"),
    OpenApiParameter("contact", str, description="`known`, `unknown` (authors not matched to a contact) or an id."),
    OpenApiParameter("since", OpenApiTypes.DATE, description="From this day (inclusive)."),
    OpenApiParameter("until", OpenApiTypes.DATE, description="Up to this day (inclusive)."),
    OpenApiParameter("q", str, description="Words in the snippet."),
    OpenApiParameter("cursor", str, description="The opaque cursor of the `next` link."),
    OpenApiParameter("page_size", int, description=f"1-{selectors.MAX_LIMIT}, default 50."),
]


class MentionViewSet(viewsets.GenericViewSet):
    """Mentions the caller may see, newest first. A private mailbox's text is blanked (``text_hidden``); a post
    author's contact the caller may not see is left out."""

    serializer_class = MentionSerializer
    queryset = Mention.objects.none()  # for the schema; requests use the selectors
    pagination_class = None
    lookup_value_regex = r"\d+"

    @extend_schema(parameters=MENTION_PARAMS, responses={200: paged_schema("MentionPage", MentionSerializer)})
    def list(self, request: Request) -> Response:
        params = MentionFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        filters = selectors.MentionFilters(
            rule_id=data.get("rule"), sentiment=data.get("sentiment", ""), channel=data.get("channel", ""),
            contact=data.get("contact", ""), since=data.get("since"), until=data.get("until"), q=data.get("q", ""),
        )  # fmt: skip
        page = selectors.mention_list(
            user=request.user, filters=filters, cursor=data.get("cursor"), limit=data["page_size"]
        )
        return paged(request, page.next, MentionSerializer(page.items, many=True).data)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(MentionSerializer(selectors.mention_get(user=request.user, pk=int(pk or 0))).data)
