from django.urls import path

from . import views

app_name = "device-protocol"

urlpatterns = [
    path("provision", views.DeviceProvisionApi.as_view(), name="provision"),
    path("checkin", views.DeviceCheckinApi.as_view(), name="checkin"),
    path("certificate", views.DeviceCertificateRenewApi.as_view(), name="certificate"),
    path("commands", views.DeviceCommandListApi.as_view(), name="commands"),
    path("commands/<uuid:command_id>", views.DeviceCommandAckApi.as_view(), name="command-ack"),
    path("ca/<slug:slug>/ca.pem", views.product_ca_certificate, name="ca-certificate"),
    path("ca/<slug:slug>/crl.pem", views.product_ca_crl, name="ca-crl"),
]
