"""Ownership in the Django admin: pre-claim and reset actions on devices, the audit trail read-only,
and allauth's email addresses (a verified address is what a pre-claim waits for).

The device admin itself belongs to devices; these actions call claiming's services, so they are
added here, on a subclass registered in its place.
"""

import re

from allauth.account.admin import EmailAddressAdmin
from allauth.account.models import EmailAddress
from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from devices.access import may_see_owners
from devices.admin import DeviceAdmin, RefusedLookupIsBadRequest, owner_lookup_allowed
from devices.models import Device
from portal.errors import ApplicationError
from portal.http import client_ip

from . import services
from .models import OwnershipEvent

_EMAIL_ADDRESS = re.compile(r"[^\s@]+@[^\s@]+")


class PreclaimForm(forms.Form):
    email = forms.EmailField(
        label="Owner's email address",
        help_text="With a verified account for this address the devices are theirs at once; "
        "otherwise they become theirs when they sign up and verify it.",
    )


def _selected_pks(queryset):
    return [str(pk) for pk in queryset.values_list("pk", flat=True)]


@admin.action(description="Pre-claim selected devices for a user…", permissions=["change"])
def preclaim_devices(modeladmin, request, queryset):
    form = PreclaimForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        try:
            result = services.device_preclaim(
                devices=queryset.select_related(None), email=form.cleaned_data["email"], actor=request.user
            )
        except ApplicationError as exc:
            form.add_error("email", exc.message)
        else:
            modeladmin.message_user(
                request,
                f"Pre-claim for {form.cleaned_data['email']}: {result['claimed']} assigned now, "
                f"{result['pending']} waiting for sign-up, {result['skipped']} skipped (already owned).",
                messages.SUCCESS,
            )
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Pre-claim devices",
        "opts": modeladmin.model._meta,
        "form": form,
        "devices": queryset[:50],
        "count": queryset.count(),
        "selected": _selected_pks(queryset),
        "action": "preclaim_devices",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/claiming/preclaim.html", context)


@admin.action(description="Reset ownership of selected devices…", permissions=["change"])
def reset_ownership(modeladmin, request, queryset):
    if "apply" not in request.POST:
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": "Reset ownership",
            "opts": modeladmin.model._meta,
            "devices": queryset[:50],
            "count": queryset.count(),
            "owned": queryset.filter(owner__isnull=False).count(),
            "selected": _selected_pks(queryset),
            "action": "reset_ownership",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/claiming/reset.html", context)
    released = 0
    for device in queryset.filter(owner__isnull=False).select_related("product"):
        try:
            services.device_release(device=device, actor=request.user, ip=client_ip(request))
        except ApplicationError:
            continue  # its owner changed meanwhile; leave it to them
        released += 1
    modeladmin.message_user(request, f"Ownership reset for {released} device(s).", messages.SUCCESS)
    return None


class OwnershipDeviceAdmin(DeviceAdmin):
    actions = [*DeviceAdmin.actions, preclaim_devices, reset_ownership]


admin.site.unregister(Device)
admin.site.register(Device, OwnershipDeviceAdmin)


class PortalEmailAddressAdmin(EmailAddressAdmin):
    """allauth's action carries no permission, so anyone who may list addresses could verify one,
    and a verified address receives the devices pre-claimed for it."""

    @admin.action(description="Mark selected email addresses as verified", permissions=["change"])
    def make_verified(self, request, queryset):
        return super().make_verified(request, queryset)


admin.site.unregister(EmailAddress)
admin.site.register(EmailAddress, PortalEmailAddressAdmin)


@admin.register(OwnershipEvent)
class OwnershipEventAdmin(RefusedLookupIsBadRequest, admin.ModelAdmin):
    """The audit trail, read-only. Who owns what is shown only with the owner permission."""

    list_display = ["created_at", "kind", "device", "detail"]
    list_filter = ["kind"]
    list_select_related = ["device"]
    search_fields = ["device__serial"]
    raw_id_fields = ["device", "actor", "owner"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_list_display(self, request):
        if may_see_owners(request.user):
            return [*self.list_display, "actor", "owner", "ip"]
        return [column if column != "detail" else "detail_without_addresses" for column in self.list_display]

    def lookup_allowed(self, lookup, value, request):
        return owner_lookup_allowed(request, lookup, {"actor", "owner", "ip", "detail"}) and super().lookup_allowed(
            lookup, value, request
        )

    @admin.display(description="detail")
    def detail_without_addresses(self, event):
        # Pre-claims name the address they were made for: that is who owns the device.
        return _EMAIL_ADDRESS.sub("(an address)", event.detail)

    def get_list_select_related(self, request):
        if may_see_owners(request.user):
            return ["device", "actor", "owner"]
        return self.list_select_related

    def get_fields(self, request, obj=None):
        if may_see_owners(request.user):
            return ["device", "kind", "detail", "created_at", "actor", "owner", "ip"]
        return ["device", "kind", "detail_without_addresses", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
