from django.urls import path

from . import notification_views, views

app_name = "devices"

# The device page itself (/devices/<uuid>/) shows data of several apps and is served by claiming.
urlpatterns = [
    path("", views.device_list, name="list"),
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
