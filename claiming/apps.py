from django.apps import AppConfig


class ClaimingConfig(AppConfig):
    name = "claiming"
    verbose_name = "Claiming"

    def ready(self):
        from allauth.account.signals import email_confirmed
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from .signals import devices_release_on_account_deleted, preclaims_apply_on_email_confirmed

        email_confirmed.connect(preclaims_apply_on_email_confirmed, dispatch_uid="claiming.preclaims_apply")
        pre_delete.connect(
            devices_release_on_account_deleted, sender=get_user_model(), dispatch_uid="claiming.account_deleted"
        )
