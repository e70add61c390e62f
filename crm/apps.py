from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Threadline core"

    def ready(self) -> None:
        from crm import checks  # noqa: F401  (registers system checks)
