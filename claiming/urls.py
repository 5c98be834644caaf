from django.urls import path

from . import device_views, transfer_views, views

app_name = "claiming"

urlpatterns = [
    path("claim/", views.claim, name="claim"),
    # The permanent short URL printed in every QR label: never change it.
    path("c/<str:code>", views.qr_redirect, name="qr"),
    # Actions of claiming's panels on the device page (the page itself is devices:detail).
    path("devices/<uuid:pk>/reset/", device_views.device_reset, name="device-reset"),
    path("devices/<uuid:pk>/transfer/", device_views.device_transfer, name="device-transfer"),
    path("devices/<uuid:pk>/transfer/cancel/", device_views.transfer_cancel, name="transfer-cancel"),
    path("devices/<uuid:pk>/pin/", device_views.device_pin, name="device-pin"),
    path("transfer/<str:token>/", transfer_views.transfer_accept, name="transfer-accept"),
]
