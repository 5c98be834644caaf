from django.urls import path

from . import device_page, notification_views, sharing_views, views

app_name = "devices"

# The device page (/devices/<uuid>/) is devices'; apps and claiming add panels to it (devices/panels.py)
# and serve their panels' actions under the same /devices/<uuid>/ prefix from their own URL confs.
urlpatterns = [
    path("", views.device_list, name="list"),
    path("live", views.device_list_live, name="list-live"),
    path("<uuid:pk>/", device_page.device_detail, name="detail"),
    path("<uuid:pk>/live", device_page.device_live, name="detail-live"),
    path("<uuid:pk>/commands/", device_page.device_command_send, name="command"),
    path("<uuid:pk>/readings.csv", device_page.device_readings_csv, name="readings-csv"),
    path("<uuid:pk>/rename/", views.device_rename, name="rename"),
    path("<uuid:pk>/credentials/revoke/", views.device_credentials_revoke, name="credentials-revoke"),
    # Sharing: the device page's panels post here (devices.sharing_views), the device list shares several.
    path("share/", sharing_views.share_selected, name="share-selected"),
    path("<uuid:pk>/sharing/invite/", sharing_views.share_invite, name="share-invite"),
    path(
        "<uuid:pk>/sharing/invitations/<int:invitation_id>/cancel/",
        sharing_views.invitation_cancel,
        name="invitation-cancel",
    ),
    path("<uuid:pk>/sharing/<int:share_id>/role/", sharing_views.share_role_change, name="share-role"),
    path("<uuid:pk>/sharing/<int:share_id>/revoke/", sharing_views.share_revoke, name="share-revoke"),
    path("<uuid:pk>/sharing/leave/", sharing_views.share_leave, name="share-leave"),
    path("<uuid:pk>/support/grant/", sharing_views.support_grant_start, name="support-grant"),
    path("<uuid:pk>/support/grant/end/", sharing_views.support_grant_end, name="support-grant-end"),
    path("notifications/", notification_views.notification_settings, name="notifications"),
    path("notifications/<uuid:pk>/", notification_views.notification_device, name="notifications-device"),
    path(
        "notifications/unsubscribe/<str:token>/",
        notification_views.notification_unsubscribe,
        name="notifications-unsubscribe",
    ),
]
