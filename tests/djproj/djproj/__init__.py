"""A small Django project, laid out as Django and Celery's guide lay it out."""

from .celery import app as celery_app

__all__ = ["celery_app"]
