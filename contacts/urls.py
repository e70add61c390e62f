from django.urls import path

from contacts import views
from contacts.views import browse, merge, profile, transfer

app_name = "contacts"
urlpatterns = [
    path("contacts/", views.contact_list, name="list"),
    path("contacts/<int:pk>/", views.contact_detail, name="detail"),
    path("contacts/<int:pk>/identities/", views.identity_add, name="identity_add"),
    path("companies/", views.company_list, name="company_list"),
    path("companies/<int:pk>/", views.company_detail, name="company_detail"),
    *profile.urlpatterns,
    *merge.urlpatterns,
    *transfer.urlpatterns,
    *browse.urlpatterns,
]
