from django.http import JsonResponse

from .jobs import count_notes  # a task module only the URLconf imports


def count(request):
    return JsonResponse({"id": count_notes.delay().id})
