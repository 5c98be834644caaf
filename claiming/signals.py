"""Receivers of other apps' signals; each one hands over to a service."""

from . import services


def preclaims_apply_on_email_confirmed(sender, request, email_address, **kwargs):
    """Devices an OEM admin pre-claimed for this address become its owner's once it is verified."""
    services.device_preclaims_apply(user=email_address.user, email=email_address.email)


def devices_release_on_account_deleted(sender, instance, **kwargs):
    """Before an account goes (the owner's own deletion or an admin's), its devices are reset."""
    services.devices_release_of_deleted_account(user=instance)
