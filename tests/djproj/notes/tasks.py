import os

from celeriac import shared_task

from .models import Note


@shared_task
def add_note(text):
    return Note.objects.create(text=text, pid=os.getpid()).pk


@shared_task
def was_connected():
    """Whether a database connection was open when the task started (it uses one)."""
    from django.db import connection

    was_open = connection.connection is not None
    Note.objects.count()
    return was_open
