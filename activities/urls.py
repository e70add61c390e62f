from django.urls import path

from activities import views
from activities.views import calendar, plans

app_name = "activities"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/complete/", views.complete, name="complete"),
    path("<int:pk>/skip/", views.skip, name="skip"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("reassign/", views.reassign_work, name="reassign_work"),
    *plans.urlpatterns,
    *calendar.urlpatterns,
]
