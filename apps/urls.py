from django.urls import path

from . import views

app_name = "apps"

urlpatterns = [
    path("", views.application_list, name="list"),
    path("new/", views.application_create, name="create"),
    path("connect/<str:token>", views.connect, name="connect"),
    path("<str:app_id>/", views.application_detail, name="detail"),
    path("<str:app_id>/settings/", views.application_settings, name="settings"),
    path("<str:app_id>/secret/", views.application_secret_replace, name="secret"),
    path("<str:app_id>/once/", views.application_shown_once, name="shown-once"),
    path("<str:app_id>/signing-secret/", views.application_signing_secret_rotate, name="signing-secret"),
    path("<str:app_id>/pause/", views.application_pause_toggle, name="pause"),
    path("<str:app_id>/delete/", views.application_delete, name="delete"),
    path("<str:app_id>/connect-link/", views.connect_link_create, name="connect-link"),
    path("<str:app_id>/remove/", views.connection_remove, name="remove"),
    path("<str:app_id>/devices/link/", views.application_device_link, name="device-link"),
    path("<str:app_id>/devices/unlink/", views.application_device_unlink, name="device-unlink"),
    path("<str:app_id>/deliveries/live", views.application_deliveries_live, name="deliveries-live"),
    path("<str:app_id>/deliveries/replay/", views.deliveries_replay, name="replay"),
    path("<str:app_id>/deliveries/test/", views.delivery_send_test, name="test"),
    path("<str:app_id>/deliveries/<int:delivery_id>/retry/", views.delivery_retry, name="retry"),
]
