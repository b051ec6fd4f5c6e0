from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class QTasksConfig(AppConfig):
    name = "django_qtasks"
    verbose_name = _("Tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_qtasks import app, checks  # noqa: F401  (registers the checks)

        app.autodiscover()
