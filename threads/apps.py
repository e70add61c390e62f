from django.apps import AppConfig


class ThreadsConfig(AppConfig):
    name = "threads"
    verbose_name = "Conversation threads"

    def ready(self) -> None:
        # Connectors register their normalizers, pollers and senders; registrations plug threads into the
        # contact timeline, merge, GDPR and My day. All at import time.
        from threads import registrations  # noqa: F401
        from threads.connectors import email, facebook, sms, twitter, webhook  # noqa: F401
