from django.urls import path

from threads import views

app_name = "threads"
urlpatterns = [
    path("", views.index, name="index"),
    path("channels/<int:pk>/", views.account_detail, name="account_detail"),
]
