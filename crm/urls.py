"""The one place that names every app's URLs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts import api as accounts_api
from activities import api as activities_api
from contacts import api as contacts_api
from crm import views as crm_views
from listening import api as listening_api
from threads import api as threads_api
from threads.api.inbound import InboundWebhookView
from threads.api.meta_webhook import facebook_webhook
from threads.api.twilio_webhook import twilio_sms_webhook, twilio_status_webhook

router = DefaultRouter()
router.register("users", accounts_api.UserViewSet, basename="user")
router.register("teams", accounts_api.TeamViewSet, basename="team")
router.register("notifications", accounts_api.NotificationViewSet, basename="notification")
contacts_api.register_routes(router)
activities_api.register_routes(router)
threads_api.register_routes(router)
listening_api.register_routes(router)

admin.site.site_header = "Threadline administration"
admin.site.site_title = "Threadline admin"

urlpatterns = [
    path("", crm_views.my_day, name="my_day"),
    path("healthz", crm_views.healthz, name="healthz"),
    path("reports/", crm_views.reports, name="reports"),
    path("accounts/", include("accounts.urls")),
    path("", include("contacts.urls")),
    path("inbox/", include("threads.urls")),
    path("threads-manual/", include(("threads.urls_manual", "threads_manual"))),
    path("activities/", include("activities.urls")),
    path("deals/", include("deals.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("listening/", include("listening.urls")),
    path("admin/", admin.site.urls),
    # Before the router: the signed webhook authenticates by its signature, not a session or token.
    path("api/v1/inbound/<slug:source>/", InboundWebhookView.as_view(), name="inbound_webhook"),
    path(
        "api/v1/listening/sources/<slug:slug>/posts/",
        listening_api.ListeningWebhookView.as_view(),
        name="listening_webhook",
    ),
    # Providers' webhooks: authenticated by their signatures (Meta X-Hub-Signature-256, X-Twilio-Signature).
    path("webhooks/facebook/", facebook_webhook, name="facebook_webhook"),
    path("webhooks/twilio/sms/", twilio_sms_webhook, name="twilio_sms_webhook"),
    path("webhooks/twilio/status/", twilio_status_webhook, name="twilio_status_webhook"),
    path("api/v1/", include(router.urls)),
    path("api/v1/auth/", include("rest_framework.urls", namespace="rest_framework")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
