from django.apps import AppConfig


class ClaimingConfig(AppConfig):
    name = "claiming"
    verbose_name = "Claiming"
