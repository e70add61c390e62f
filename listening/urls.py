from django.urls import path

from listening import views

app_name = "listening"
urlpatterns = [
    path("", views.index, name="index"),
    path("charts/", views.charts, name="charts"),
    path("mentions/", views.mention_list, name="mentions"),
    path("rules/new/", views.rule_new, name="rule_new"),
    path("rules/dry-run/", views.dry_run, name="dry_run"),
    path("rules/<int:pk>/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
    path("sources/", views.source_list, name="sources"),
    path("sources/new/", views.source_create, name="source_create"),
    path("sources/<int:pk>/", views.source_edit, name="source_edit"),
    path("sources/<int:pk>/fetch/", views.source_fetch_now, name="source_fetch_now"),
    path("sources/<int:pk>/secret/", views.source_rotate_secret, name="source_rotate_secret"),
    path("sources/<int:pk>/delete/", views.source_delete, name="source_delete"),
]
