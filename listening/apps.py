from django.apps import AppConfig


class ListeningConfig(AppConfig):
    name = "listening"
    verbose_name = "Listening"

    def ready(self) -> None:
        # Registrations (the messages_ingested receiver, timeline, merge, GDPR, My day, source fetchers) happen at
        # import time.
        from listening import registrations  # noqa: F401
