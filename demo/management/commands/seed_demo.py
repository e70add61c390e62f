"""`manage.py seed_demo`: idempotent demo data for `make run` (see demo.services)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from demo.services import DEMO_PASSWORD_DEFAULT, USERS, demo_seed


class Command(BaseCommand):
    help = "Create demo teams, users, companies and contacts. Safe to run again: it only adds what is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        report = demo_seed()
        self.stdout.write(f"threadline: seed_demo {report}.")
        if report.users:
            names = ", ".join(u[0] for u in USERS)
            self.stdout.write(
                f"threadline: demo users {names} sign in with password '{DEMO_PASSWORD_DEFAULT}' "
                "(or DEMO_PASSWORD if set)."
            )
