"""Browser pages for logging manual touches; included by crm/urls.py under the ``threads_manual`` namespace."""

from django.urls import path

from threads.views import manual

urlpatterns = [
    path("contacts/<int:contact_pk>/log/", manual.log_touch, name="log"),
]
