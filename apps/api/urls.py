from django.urls import path

from . import views

app_name = "apps-api"

urlpatterns = [
    # Devices
    path("devices", views.DeviceListApi.as_view(), name="device-list"),
    path("devices/<uuid:device_id>", views.DeviceDetailApi.as_view(), name="device-detail"),
    path("devices/<uuid:device_id>/readings", views.ReadingListApi.as_view(), name="reading-list"),
    # Commands
    path("devices/<uuid:device_id>/commands", views.CommandListApi.as_view(), name="command-list"),
    path(
        "devices/<uuid:device_id>/commands/<uuid:command_id>",
        views.CommandDetailApi.as_view(),
        name="command-detail",
    ),
    # Events
    path("events", views.EventListApi.as_view(), name="event-list"),
    # Connect links
    path("connect-links", views.ConnectLinkCreateApi.as_view(), name="connect-link-create"),
]
