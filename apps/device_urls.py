"""apps' actions on the device page, under /devices/<uuid>/ beside the page (which is devices')."""

from django.urls import path

from . import device_views

app_name = "apps-device"

urlpatterns = [
    path("<uuid:pk>/apps/link/", device_views.device_app_link, name="link"),
]
