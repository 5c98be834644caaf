"""The invitation link emailed to an invited person: /shares/<token> (the token is redacted from logs)."""

from django.urls import path

from . import sharing_views

app_name = "sharing"

urlpatterns = [
    path("shares/<str:token>", sharing_views.invitation_respond, name="invitation"),
]
