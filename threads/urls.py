from django.urls import path

from threads import views

app_name = "threads"
urlpatterns = [
    path("", views.index, name="index"),
]
