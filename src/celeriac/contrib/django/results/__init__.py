"""Task and group results in the project's database, through Django's ORM.

List ``celeriac.contrib.django.results`` in ``INSTALLED_APPS``, run ``manage.py migrate``
and set ``CELERY_RESULT_BACKEND = "django-db"`` (or ``"django-cache"``, Django's cache). Rows
are :class:`~.models.TaskResult` and :class:`~.models.GroupResult`, with the field names of
django-celery-results, shown read-only in the admin.
"""
