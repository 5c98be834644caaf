"""The OEM's admin: products, devices (fast with 100,000 of them), claim codes, the CSV import
and QR labels.

Privacy: who owns a device is shown only to staff with the `devices.view_device_owner`
permission; the others see whether a device is owned, not by whom.

The claiming app adds its ownership actions by subclassing DeviceAdmin (and re-registering it);
`actions` stays a plain list for that.
"""

import logging

from django import forms
from django.contrib import admin
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.log import log_response

from portal.errors import ValidationError

from . import admin_views, codes
from .access import may_see_owners
from .command_definitions import product_commands_validate
from .labels import claim_code_text
from .models import ClaimCode, Device, Product, ProductField
from .product_fields import product_fields_validate
from .services import stale_checks_reschedule
from .sql import table_rows_estimate

# Django's own logger for a refused lookup, so that a security log filter still sees it.
refused_lookup_logger = logging.getLogger("django.security.DisallowedModelAdminLookup")


def can_see_owner(request) -> bool:
    """Whether the admin may see owners (`devices.access.may_see_owners`)."""
    return may_see_owners(request.user)


def owner_lookup_allowed(request, lookup: str, owner_fields) -> bool:
    """False for a changelist filter on `owner_fields` (say `?owner=7`, which Django allows on any
    field of the model) from an admin without the owner permission: filtering by owner is seeing it."""
    return can_see_owner(request) or lookup.split("__", 1)[0] not in owner_fields


class RefusedLookupIsBadRequest:
    """A changelist filter that `lookup_allowed` refuses (say by owner, without the permission)
    is answered 400 and logged as a warning. Django would log it as an error with a traceback, for
    what is an expected refusal."""

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except DisallowedModelAdminLookup as exc:
            response = render(
                request,
                "error.html",
                {"status": 400, "title": "Bad request", "message": "You cannot filter this list by that field."},
                status=400,
            )
            # The message names the field, never the value (an owner's address).
            log_response(
                "%s: %s", str(exc), request.path, response=response, request=request, logger=refused_lookup_logger
            )
            return response


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered changelist from PostgreSQL's statistics instead of COUNT(*).

    COUNT(*) reads the whole table (or index) on every page view; past ESTIMATE_FROM rows the
    planner's estimate (pg_class.reltuples, kept fresh by autovacuum) is close enough for a page
    count. Filtered and searched lists, and small tables, are counted exactly.
    """

    ESTIMATE_FROM = 10_000

    @cached_property
    def count(self):
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not queryset.query.where:
            estimate = table_rows_estimate(connection, queryset.model._meta.db_table)
            if estimate is not None and estimate >= self.ESTIMATE_FROM:
                return estimate
        return super().count


class OwnershipFilter(admin.SimpleListFilter):
    """Owned or not, without saying by whom: fine for every OEM admin."""

    title = "ownership"
    parameter_name = "owned"

    def lookups(self, request, model_admin):
        return [("yes", "Owned"), ("no", "Not owned")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(owner__isnull=self.value() == "no")
        return queryset


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = [
            "name",
            "slug",
            "description",
            "offline_after",
            "checkin_interval",
            "poll_cap",
            "commands",
            "certificate_days",
        ]

    def clean_commands(self):
        try:
            return product_commands_validate(self.cleaned_data["commands"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.message) from None


class ProductFieldFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [
            form.instance
            for form in self.forms
            if form.has_changed() or form.instance.pk
            if not (self.can_delete and self._should_delete_form(form))
        ]
        try:
            product_fields_validate(kept)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message) from None


class ProductFieldInline(admin.TabularInline):
    """What the product's values mean (devices.product_fields). Its own model permissions decide
    (devices.view/add/change/delete_productfield): who edits a product's settings need not be who
    changes how every owner's device page reads its values."""

    model = ProductField
    formset = ProductFieldFormSet
    extra = 0
    fields = ["order", "key", "label", "unit", "kind", "decimals", "expected_min", "expected_max", "states", "primary"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductForm
    inlines = [ProductFieldInline]
    list_display = ["name", "slug", "offline_after", "checkin_interval", "device_count"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["ca_certificate_pem", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description"]}),
        ("Devices", {"fields": ["offline_after", "checkin_interval", "poll_cap", "commands"]}),
        ("Certificates", {"fields": ["certificate_days", "ca_certificate_pem"]}),
        (None, {"fields": ["created_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(device_count=Count("devices"))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "offline_after" in form.changed_data:
            stale_checks_reschedule(product=obj)

    @admin.display(description="devices", ordering="device_count")
    def device_count(self, product):
        url = reverse("admin:devices_device_changelist") + f"?product__id__exact={product.pk}"
        return format_html('<a href="{}">{}</a>', url, product.device_count)


class DeviceForm(forms.ModelForm):
    class Meta:
        model = Device
        fields = ["product", "name", "claim_code", "claimable"]

    def clean(self):
        cleaned = super().clean()
        # No PIN means not claimable by serial + PIN; PINs are set by the import or the owner.
        if cleaned.get("claimable") and not self.instance.pin_digest:
            self.add_error("claimable", "This device has no PIN, so it cannot be claimable by serial and PIN.")
        return cleaned


@admin.register(Device)
class DeviceAdmin(RefusedLookupIsBadRequest, admin.ModelAdmin):
    form = DeviceForm
    change_list_template = "admin/devices/device/change_list.html"
    list_display = ["serial", "product", "status", "claimable", "is_owned", "last_seen_at"]
    list_filter = ["product", "status", OwnershipFilter, "claimable"]
    # Served by the serial's unique index (and its LIKE 'prefix%' twin on PostgreSQL); see get_search_results.
    search_fields = ["^serial"]
    search_help_text = "A serial number, or its beginning."
    list_select_related = ["product"]
    autocomplete_fields = ["product"]
    raw_id_fields = ["claim_code"]
    list_per_page = 100
    paginator = EstimatedCountPaginator
    # Counting every filter choice, or the whole table beside a filtered count, is what gets slow.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["print_labels"]
    readonly_fields = [
        "id",
        "serial",
        "is_owned",
        "owned_since",
        "preclaim_email",
        "status",
        "last_seen_at",
        "last_ip",
        "values",
        "token_issued_at",
        "token_used_at",
        "created_at",
    ]

    # --- what an admin may see ------------------------------------------------------------------

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if can_see_owner(request):
            columns.insert(columns.index("is_owned"), "owner_email")
            columns.remove("is_owned")
        return columns

    def get_list_select_related(self, request):
        related = list(super().get_list_select_related(request))
        return [*related, "owner"] if can_see_owner(request) else related

    def lookup_allowed(self, lookup, value, request):
        return owner_lookup_allowed(request, lookup, {"owner", "preclaim_email"}) and super().lookup_allowed(
            lookup, value, request
        )

    def get_fieldsets(self, request, obj=None):
        ownership = ["owner_email", "owned_since", "preclaim_email"] if can_see_owner(request) else ["is_owned"]
        label = ["label_links"] if self.has_print_labels_permission(request) else []
        return [
            (None, {"fields": ["serial", "id", "product", "name", "claim_code", *label]}),
            ("Ownership", {"fields": ownership}),
            ("PIN claiming", {"fields": ["claimable"]}),
            ("State", {"fields": ["status", "last_seen_at", "last_ip", "values", "created_at"]}),
            ("Credentials", {"fields": ["token_issued_at", "token_used_at"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "owner_email", "label_links"]

    def has_add_permission(self, request):
        # Devices arrive through the import (factory keys and codes need generating); see import_view.
        return False

    def has_print_labels_permission(self, request):
        return request.user.has_perms(["devices.view_device", "devices.view_claimcode"])

    def has_import_permission(self, request):
        return request.user.has_perms(["devices.add_device", "devices.add_claimcode"])

    def get_search_results(self, request, queryset, search_term):
        """Serial prefix, case-sensitive as stored (the typed case, then upper case): LIKE 'x%'
        uses the serial's index on PostgreSQL, where UPPER(serial) LIKE would read every row."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = queryset.filter(serial__startswith=term)
        if term.upper() != term:
            matches = matches | queryset.filter(serial__startswith=term.upper())
        return matches, False

    # --- columns and fields ---------------------------------------------------------------------

    @admin.display(description="owned", boolean=True)
    def is_owned(self, device):
        return device.owner_id is not None

    @admin.display(description="owner", ordering="owner__email")
    def owner_email(self, device):
        return device.owner.email if device.owner_id else "—"

    @admin.display(description="QR label")
    def label_links(self, device):
        if device.pk is None or device.claim_code_id is None:
            return "No claim code, so no label."
        return format_html(
            '<a href="{}">PNG</a> · <a href="{}">SVG</a> · <a href="{}">Printable sheet</a>',
            reverse("admin:devices_device_label_png", args=[device.pk]),
            reverse("admin:devices_device_label_svg", args=[device.pk]),
            reverse("admin:devices_device_labels") + f"?ids={device.pk}",
        )

    def save_model(self, request, obj, form, change):
        if change:
            # Only what the form changed: a full save would write back the status, last_seen_at and
            # values read when the page loaded, over the device's check-ins since then.
            if form.changed_data:
                obj.save(update_fields=form.changed_data)
        else:
            obj.save()

    # --- actions and pages ------------------------------------------------------------------------

    @admin.action(description="Print QR labels for the selected devices", permissions=["print_labels"])
    def print_labels(self, request, queryset):
        return admin_views.label_sheet(request, queryset, model_admin=self)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_import": self.has_import_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        # admin_view only asks for a staff session: each page names the permission it needs here,
        # before the page reads anything.
        def view(function, allowed):
            def guarded(request, *args, **kwargs):
                if not allowed(request):
                    raise PermissionDenied
                return function(request, *args, model_admin=self, **kwargs)

            return self.admin_site.admin_view(guarded)

        importing, labelling = self.has_import_permission, self.has_print_labels_permission
        own = [
            path("import/", view(admin_views.device_import, importing), name="devices_device_import"),
            path(
                "import/<str:token>/",
                view(admin_views.device_import_result, importing),
                name="devices_device_import_result",
            ),
            path(
                "import/<str:token>/result.csv",
                view(admin_views.device_import_download, importing),
                name="devices_device_import_download",
            ),
            path("labels/", view(admin_views.label_sheet_for_ids, labelling), name="devices_device_labels"),
            path("<uuid:pk>/label.png", view(admin_views.label_png, labelling), name="devices_device_label_png"),
            path("<uuid:pk>/label.svg", view(admin_views.label_svg, labelling), name="devices_device_label_svg"),
        ]
        return own + super().get_urls()


@admin.register(ClaimCode)
class ClaimCodeAdmin(admin.ModelAdmin):
    """Codes are listed by number and device count; the code itself appears only on its own page
    (to reprint a label), and a printed code can be looked up by typing it."""

    list_display = ["__str__", "device_count", "expires_at", "created_at"]
    fields = ["code", "devices", "expires_at", "created_at"]
    readonly_fields = ["code", "devices", "created_at"]
    search_fields = ["digest"]
    search_help_text = "A claim code exactly as printed (hyphens and case do not matter)."
    ordering = ["-pk"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_queryset(self, request):
        # A correlated COUNT per listed row: evaluated for the page's rows only, not by grouping
        # the whole device table.
        count = (
            Device.objects.filter(claim_code=OuterRef("pk"))
            .order_by()
            .values("claim_code")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(device_count=Coalesce(Subquery(count, output_field=IntegerField()), Value(0)))
        )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(digest=codes.digest(term)), False

    def has_add_permission(self, request):
        return False  # codes are made by the import, with their devices

    @admin.display(description="devices", ordering="device_count")
    def device_count(self, claim_code):
        return claim_code.device_count

    @admin.display(description="code")
    def code(self, claim_code):
        return codes.display(claim_code_text(claim_code))

    @admin.display(description="devices")
    def devices(self, claim_code):
        url = reverse("admin:devices_device_changelist") + f"?claim_code__id__exact={claim_code.pk}"
        return format_html('<a href="{}">{} device(s)</a>', url, claim_code.device_count)
