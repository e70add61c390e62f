from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for `make run`. It sits above every domain app, so it may import all of them."""

    name = "demo"
    verbose_name = "Demo data"
