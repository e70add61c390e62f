from django.apps import AppConfig


class ActivitiesConfig(AppConfig):
    name = "activities"
    verbose_name = "Activities and plans"

    def ready(self) -> None:
        # Registrations (timeline, merge, GDPR, My day panels, signal receivers) happen at import time.
        from activities import (  # noqa: F401
            calendar_registrations,
            plan_registrations,
            registrations,
        )
