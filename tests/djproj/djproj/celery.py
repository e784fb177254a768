import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")

app = Celery("djproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
if os.environ.get("DJPROJ_DISCOVER") == "installed-apps":  # the Celery 3.1/4 docs' form
    from django.conf import settings

    app.autodiscover_tasks(lambda: settings.INSTALLED_APPS)
else:
    app.autodiscover_tasks()
