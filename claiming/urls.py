from django.urls import path

from . import views

app_name = "claiming"

urlpatterns = [
    path("claim/", views.claim, name="claim"),
    # The permanent short URL printed in every QR label: never change it.
    path("c/<str:code>", views.qr_redirect, name="qr"),
    path("devices/<uuid:pk>/", views.device_detail, name="device"),
    path("devices/<uuid:pk>/reset/", views.device_reset, name="device-reset"),
    path("devices/<uuid:pk>/transfer/", views.device_transfer, name="device-transfer"),
    path("devices/<uuid:pk>/transfer/cancel/", views.transfer_cancel, name="transfer-cancel"),
    path("devices/<uuid:pk>/pin/", views.device_pin, name="device-pin"),
    path("devices/<uuid:pk>/commands/", views.device_command_send, name="device-command"),
    path("devices/<uuid:pk>/apps/link/", views.device_app_link, name="device-app-link"),
    path("transfer/<str:token>/", views.transfer_accept, name="transfer-accept"),
]
