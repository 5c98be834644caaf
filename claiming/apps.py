from django.apps import AppConfig


class ClaimingConfig(AppConfig):
    name = "claiming"
    verbose_name = "Claiming"

    def ready(self):
        from allauth.account.signals import email_confirmed

        from .signals import preclaims_apply_on_email_confirmed

        email_confirmed.connect(preclaims_apply_on_email_confirmed, dispatch_uid="claiming.preclaims_apply")
