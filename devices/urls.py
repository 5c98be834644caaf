from django.urls import path

from . import views

app_name = "devices"

# The device page itself (/devices/<uuid>/) shows data of several apps and is served by claiming.
urlpatterns = [
    path("", views.device_list, name="list"),
    path("<uuid:pk>/rename/", views.device_rename, name="rename"),
]
