from django.apps import AppConfig


class NewtasksConfig(AppConfig):
    name = "newtasks"
