"""Small utilities with Celery's module names (``celeriac.utils.log.get_task_logger``)."""
