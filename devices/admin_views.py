"""The device admin's own pages: the CSV import (upload → preview → confirm → result file) and
the QR labels (a printable A4 sheet, PNG and SVG per device).

Wired by `devices.admin.DeviceAdmin.get_urls`, behind the admin site's staff login and the
permission each page needs (checked there, and by the print_labels action).
"""

import io
import json
import logging
import re
import uuid

from django import forms
from django.contrib import messages
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from portal.errors import ValidationError
from portal.secrets import decrypt, encrypt, random_token

from . import labels
from .models import Device, Product
from .registration import (
    COLUMNS,
    RegistrationRefused,
    registration_import,
    registration_plan,
    registration_result_csv,
)

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 20
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # about 300,000 rows; larger files go through the command
# The upload waits for confirmation, and the result for its download, in the cache (shared by
# every web process), encrypted since both hold factory keys.
UPLOAD_TTL = 30 * 60
RESULT_TTL = 15 * 60
MAX_LABELS = 1000


class DeviceImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=(
            f"UTF-8 with a header line. Columns: {', '.join(COLUMNS)}; only serial is required. "
            "Empty factory keys and claim codes are generated. Serials are A–Z, a–z, 0–9 and . _ - ; "
            "factory keys add ~ + / =; both begin with a letter or digit."
        ),
    )
    product = forms.SlugField(
        label="Product slug",
        help_text="An existing product, or a new slug: the product is then created.",
        widget=forms.TextInput(attrs={"list": "product-slugs", "autocomplete": "off"}),
    )
    product_name = forms.CharField(
        label="Name of a new product", required=False, max_length=120, help_text="Ignored for an existing product."
    )
    batch_code = forms.BooleanField(
        label="Batch code",
        required=False,
        help_text="Give all devices of the file one shared claim code (an OEM batch) instead of one code each.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; use the register_devices command."
            )
        return upload


def _upload_key(request, token):
    return f"devices:import:{request.user.pk}:{token}"


def _result_key(request, token):
    return f"devices:import-result:{request.user.pk}:{token}"


def device_import(request, *, model_admin):
    """Step 1 (upload) and step 2 (preview, then confirm) of the admin import."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Device._meta,
        "title": "Import devices",
        "products": Product.objects.only("slug", "name"),
    }

    if request.method == "POST" and "confirm" in request.POST:
        return _import_confirm(request, token=request.POST.get("token", ""))

    form = DeviceImportForm(request.POST or None, request.FILES or None)
    if request.method != "POST" or not form.is_valid():
        status = 400 if request.method == "POST" else 200
        return render(request, "admin/devices/device/import.html", {**context, "form": form}, status=status)

    data = form.cleaned_data["file"].read()
    plan = registration_plan(data=data, batch_code=form.cleaned_data["batch_code"])
    slug = form.cleaned_data["product"]
    product = Product.objects.filter(slug=slug).first()
    token = ""
    if plan.ok:
        token = random_token(16)
        pending = {
            "data": data.decode("utf-8-sig"),
            "product": slug,
            "product_name": form.cleaned_data["product_name"],
            "batch_code": plan.batch_code,
            "file_name": form.cleaned_data["file"].name,
        }
        cache.set(_upload_key(request, token), encrypt(json.dumps(pending)), UPLOAD_TTL)
    rows = plan.rows[:PREVIEW_ROWS]
    context.update(
        form=form,
        plan=plan,
        rows=rows,
        more_rows=len(plan.rows) - len(rows),
        product=product,
        product_slug=slug,
        keys_generated=sum(1 for row in plan.rows if not row.factory_key),
        codes_generated=sum(1 for row in plan.rows if not row.claim_code),
        token=token,
        title="Import devices: check and confirm",
    )
    return render(request, "admin/devices/device/import.html", context, status=200 if plan.ok else 400)


def _import_confirm(request, *, token):
    stored = cache.get(_upload_key(request, token)) if token else None
    if stored is None:
        messages.error(request, "This upload has expired or was already imported. Upload the file again.")
        return redirect("admin:devices_device_import")
    pending = json.loads(decrypt(stored))
    try:
        results = registration_import(
            data=pending["data"].encode(),
            product_slug=pending["product"],
            product_name=pending["product_name"],
            batch_code=pending["batch_code"],
        )
    except RegistrationRefused as exc:
        cache.delete(_upload_key(request, token))
        for error in exc.errors:
            messages.error(request, error)
        messages.error(request, "The file was refused; nothing was registered.")
        return redirect("admin:devices_device_import")
    except ValidationError as exc:
        messages.error(request, exc.message)
        return redirect("admin:devices_device_import")
    cache.delete(_upload_key(request, token))

    stream = io.StringIO()
    registration_result_csv(results, stream)
    result = {
        "csv": stream.getvalue(),
        "product": pending["product"],
        "count": len(results),
        "preview": [[r.serial, r.claim_code, r.claim_url] for r in results[:PREVIEW_ROWS]],
        "file_name": f"devices-{pending['product']}-{timezone.now():%Y%m%d-%H%M%S}.csv",
    }
    result_token = random_token(16)
    cache.set(_result_key(request, result_token), encrypt(json.dumps(result)), RESULT_TTL)
    logger.info("devices.imported", extra={"user_id": request.user.pk, "devices": len(results)})
    messages.success(request, f"Registered {len(results)} devices of product {pending['product']}.")
    return redirect("admin:devices_device_import_result", token=result_token)


def _stored_result(request, token):
    stored = cache.get(_result_key(request, token))
    return json.loads(decrypt(stored)) if stored else None


def device_import_result(request, token, *, model_admin):
    """Step 3: the result page, from which the result file (with the new keys) is downloaded."""
    if request.method == "POST":
        cache.delete(_result_key(request, token))
        messages.info(request, "The result file was removed from the server.")
        return redirect("admin:devices_device_changelist")
    result = _stored_result(request, token)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Device._meta,
        "title": "Import devices: result",
        "result": result,
        "token": token,
        "ttl_minutes": RESULT_TTL // 60,
    }
    return render(request, "admin/devices/device/import_result.html", context, status=200 if result else 404)


def device_import_download(request, token, *, model_admin):
    result = _stored_result(request, token)
    if result is None:
        messages.error(request, "The result file has expired or was removed.")
        return redirect("admin:devices_device_changelist")
    response = HttpResponse(result["csv"], content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{result["file_name"]}"'
    response["Cache-Control"] = "no-store"
    return response


# --- labels -------------------------------------------------------------------------------------


def label_sheet(request, devices, *, model_admin):
    """The printable A4 sheet of QR labels for `devices` (a queryset)."""
    devices = devices.select_related("product", "claim_code").order_by("serial")
    selected = list(devices[: MAX_LABELS + 1])
    if len(selected) > MAX_LABELS:
        messages.error(request, f"Select at most {MAX_LABELS} devices per label sheet.")
        return redirect("admin:devices_device_changelist")
    sheet, skipped = labels.labels_for_devices(selected)
    context = {
        "pages": labels.label_pages(sheet),
        "label_count": len(sheet),
        "skipped": skipped,
        "back_url": reverse("admin:devices_device_changelist"),
        "site_header": model_admin.admin_site.site_header,
    }
    return render(request, "devices/labels.html", context)


def label_sheet_for_ids(request, *, model_admin):
    """GET ?ids=<uuid>,<uuid>… : the sheet for chosen devices (linked from a device's page)."""
    try:
        ids = [uuid.UUID(value) for value in request.GET.get("ids", "").split(",") if value.strip()]
    except ValueError:
        return HttpResponseBadRequest("ids must be device ids separated by commas.")
    if not ids:
        return HttpResponseBadRequest("Name the devices: ?ids=<id>,<id>")
    return label_sheet(request, Device.objects.filter(pk__in=ids), model_admin=model_admin)


def _device_with_code(request, pk):
    device = get_object_or_404(Device.objects.select_related("product", "claim_code"), pk=pk)
    code = labels.device_claim_code(device)
    if code is None:
        messages.error(request, f"Device {device.serial} has no claim code, so it has no label.")
    return device, code


def _file_name(device, extension):
    return "label-" + re.sub(r"[^A-Za-z0-9._-]+", "_", device.serial) + f".{extension}"


def label_png(request, pk, *, model_admin):
    device, code = _device_with_code(request, pk)
    if code is None:
        return redirect("admin:devices_device_change", device.pk)
    response = HttpResponse(labels.label_png(code), content_type="image/png")
    response["Content-Disposition"] = f'attachment; filename="{_file_name(device, "png")}"'
    response["Cache-Control"] = "no-store"
    return response


def label_svg(request, pk, *, model_admin):
    device, code = _device_with_code(request, pk)
    if code is None:
        return redirect("admin:devices_device_change", device.pk)
    response = HttpResponse(labels.label_svg(code), content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_file_name(device, "svg")}"'
    response["Cache-Control"] = "no-store"
    return response
