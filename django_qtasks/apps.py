import django
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class QTasksConfig(AppConfig):
    name = "django_qtasks"
    verbose_name = _("Tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_qtasks import app, checks  # noqa: F401  (registers the checks)

        if django.VERSION >= (6, 0):
            # The django.tasks backend's rows run through its own runner.
            from django_qtasks.app import DJANGO_TASK_KEY, register_row_runner
            from django_qtasks.backends.runner import django_task_handle

            register_row_runner(DJANGO_TASK_KEY, django_task_handle)
        app.autodiscover()
