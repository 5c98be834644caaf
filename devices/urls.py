from django.urls import path

from . import device_page, notification_views, views

app_name = "devices"

# The device page (/devices/<uuid>/) is devices'; apps and claiming add panels to it (devices/panels.py)
# and serve their panels' actions under the same /devices/<uuid>/ prefix from their own URL confs.
urlpatterns = [
    path("", views.device_list, name="list"),
    path("<uuid:pk>/", device_page.device_detail, name="detail"),
    path("<uuid:pk>/commands/", device_page.device_command_send, name="command"),
    path("<uuid:pk>/rename/", views.device_rename, name="rename"),
    path("<uuid:pk>/credentials/revoke/", views.device_credentials_revoke, name="credentials-revoke"),
    path("notifications/", notification_views.notification_settings, name="notifications"),
    path("notifications/<uuid:pk>/", notification_views.notification_device, name="notifications-device"),
    path(
        "notifications/unsubscribe/<str:token>/",
        notification_views.notification_unsubscribe,
        name="notifications-unsubscribe",
    ),
]
