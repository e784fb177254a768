import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_beat.settings")

app = Celery("site_beat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
