"""Create the first admin once, printing its generated password exactly once."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.services import user_create


class Command(BaseCommand):
    help = "Create the admin user if it does not exist (ADMIN_USERNAME, ADMIN_EMAIL, ADMIN_PASSWORD from the env)."

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("ADMIN_USERNAME", "admin")
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"threadline: admin user '{username}' exists (manage.py changepassword {username}).")
            return
        given = os.environ.get("ADMIN_PASSWORD", "")
        password = given or secrets.token_urlsafe(12)
        user_create(
            username=username,
            email=os.environ.get("ADMIN_EMAIL", "admin@localhost"),
            password=password,
            role=User.Role.ADMIN,
            first_name="Admin",
        )
        if given:
            self.stdout.write(f"threadline: created admin user '{username}' with the password from ADMIN_PASSWORD.")
        else:
            # Printed once and stored only as a hash: there is no way to show it again.
            self.stdout.write(
                self.style.SUCCESS(f"threadline: created admin user '{username}' with password {password}")
                + "\n           (shown only now; change it at /admin/password_change/)"
            )
