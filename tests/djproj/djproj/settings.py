import os

DATA = os.environ["DJPROJ_DATA"]  # a directory of the test's own

SECRET_KEY = "test-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "notes"]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(DATA, "site.db")}
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "djproj.urls"

CELERY_BROKER_URL = f"sqlite:///{os.path.join(DATA, 'broker.db')}"
CELERY_TASK_DEFAULT_QUEUE = "site"
