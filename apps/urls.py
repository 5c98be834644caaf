from django.urls import path

from . import views

app_name = "apps"

urlpatterns = [
    path("", views.application_list, name="list"),
    path("new/", views.application_create, name="create"),
    path("connect/<str:token>", views.connect, name="connect"),
    path("device-link/", views.device_link, name="device-link"),
    path("device-unlink/", views.device_unlink, name="device-unlink"),
    path("<str:app_id>/", views.application_detail, name="detail"),
]
