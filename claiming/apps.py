from django.apps import AppConfig


class ClaimingConfig(AppConfig):
    name = "claiming"
    verbose_name = "Claiming"

    def ready(self):
        from allauth.account.signals import email_confirmed
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from devices import access, panels

        from . import device_views
        from .signals import devices_release_on_account_deleted, preclaims_apply_on_email_confirmed

        email_confirmed.connect(preclaims_apply_on_email_confirmed, dispatch_uid="claiming.preclaims_apply")
        pre_delete.connect(
            devices_release_on_account_deleted, sender=get_user_model(), dispatch_uid="claiming.account_deleted"
        )
        # claiming's panels of the device page (orders: devices/panels.py).
        actions = {"slot": panels.ACTIONS, "capability": access.MANAGE}
        panels.register("transfer", "claiming/device_panels/transfer_action.html", order=200, **actions)
        panels.register("reset", "claiming/device_panels/reset_action.html", order=300, **actions)
        panels.register(
            "transfer-notice",
            "claiming/device_panels/transfer_notice.html",
            context=device_views.transfer_context,
            slot=panels.NOTICES,
            order=100,
            capability=access.MANAGE,
        )
        panels.register(
            "pin",
            "claiming/device_panels/pin.html",
            context=device_views.pin_context,
            order=600,
            capability=access.MANAGE,
        )
        panels.register(
            "ownership",
            "claiming/device_panels/ownership.html",
            context=device_views.history_context,
            order=700,
        )
