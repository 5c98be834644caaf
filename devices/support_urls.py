"""The maker's support page: devices whose owners granted support access (devices.support_views)."""

from django.urls import path

from . import support_views

app_name = "support"

urlpatterns = [
    path("", support_views.support_list, name="list"),
    path("<uuid:pk>/", support_views.support_device, name="device"),
    path("<uuid:pk>/commands/", support_views.support_command_send, name="command"),
]
