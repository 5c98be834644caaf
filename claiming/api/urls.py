from django.urls import path

from . import views

app_name = "claiming-api"

urlpatterns = [
    path("claims", views.ClaimCreateApi.as_view(), name="claim-create"),
]
