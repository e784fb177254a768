"""Django with the dashboard at /dashboard/, for staff users."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resultsproj.settings")
django_app = get_asgi_application()

from celeriac.contrib.django.dashboard import with_dashboard  # noqa: E402

from .celery import app  # noqa: E402

application = with_dashboard(django_app, app, prefix="/dashboard")
