from django_qtasks.worker.worker import Worker

__all__ = ["Worker"]
