from django.urls import path

from . import views

app_name = "claiming"

urlpatterns = [
    path("claim/", views.claim, name="claim"),
]
