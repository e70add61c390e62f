"""Sign-in pages and the notification area."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import unread_notifications
from accounts.services import notifications_mark_read


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True
    extra_context = {"page_title": "Sign in"}


class LogoutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You have signed out.")
        return response


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    items = unread_notifications(user=request.user, limit=20)
    template = "accounts/_notifications.html" if request.htmx else "accounts/notifications.html"
    return render(request, template, {"notifications": items, "page_title": "Notifications"})


@login_required
@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    count = notifications_mark_read(user=request.user)
    if request.htmx:
        return render(request, "accounts/_notifications.html", {"notifications": []})
    messages.success(request, f"Marked {count} notification(s) as read.")
    return redirect("accounts:notifications")
