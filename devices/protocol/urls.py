from django.urls import path

from . import views

app_name = "device-protocol"

urlpatterns = [
    path("provision", views.DeviceProvisionApi.as_view(), name="provision"),
    path("checkin", views.DeviceCheckinApi.as_view(), name="checkin"),
    path("commands", views.DeviceCommandListApi.as_view(), name="commands"),
    path("commands/<uuid:command_id>", views.DeviceCommandAckApi.as_view(), name="command-ack"),
]
