from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = "Contacts and companies"

    def ready(self) -> None:
        from contacts import (
            browse_registrations,  # noqa: F401  (timeline sources: audit, identity)
            merge_registrations,  # noqa: F401  (merge handlers, "merge" timeline source)
            profile_registrations,  # noqa: F401  (registers at import)
            transfer_registrations,  # noqa: F401  (personal-data sources: GDPR export/erase)
        )
