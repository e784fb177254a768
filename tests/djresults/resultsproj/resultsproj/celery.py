import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resultsproj.settings")

app = Celery("resultsproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
