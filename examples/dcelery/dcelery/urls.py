from django.contrib import admin
from django.urls import path
from newapp import views

urlpatterns = [
    path("", views.index, name="index"),
    path("run/<str:name>/", views.run, name="run"),
    path("result/<str:task_id>/", views.result, name="result"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
]
