"""QR labels: PNG and SVG decode to the short claim URL, the code is printed under the symbol,
and the admin's label pages (downloads, the A4 sheet, the print action)."""

import io
import re
import xml.etree.ElementTree as ET
from http import HTTPStatus

import pytest
import zxingcpp
from django.contrib.auth.models import Permission
from django.urls import reverse
from PIL import Image, ImageDraw

from devices import codes, labels
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


def decode(image):
    return [result.text for result in zxingcpp.read_barcodes(image)]


def rasterize(svg_text, scale=8):
    """Draws the label SVG's path (runs of "M x y h n v1 h-n z") to a PIL image for the decoder."""
    root = ET.fromstring(svg_text.encode())
    width, height = (int(float(v)) for v in root.get("viewBox").split()[2:])
    image = Image.new("L", (width * scale, height * scale), 255)
    draw = ImageDraw.Draw(image)
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)", root.find(f"{SVG}path").get("d")):
        x, y, run = int(x), int(y), int(run)
        draw.rectangle([x * scale, y * scale, (x + run) * scale - 1, (y + 1) * scale - 1], fill=0)
    return image


@pytest.mark.parametrize("code", ["7K3QF-M9X2D", "old-label-77"])
def test_png_decodes_to_the_claim_url(code, settings):
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    image = Image.open(io.BytesIO(labels.label_png(code)))
    assert decode(image) == [f"https://portal.example.com/c/{codes.normalize(code)}"]


def test_png_leaves_room_for_the_code_under_the_symbol():
    image = Image.open(io.BytesIO(labels.label_png("7K3QF-M9X2D"))).convert("L")
    assert image.height > image.width
    text_band = image.crop((0, image.width, image.width, image.height))
    assert text_band.getextrema()[0] < 128  # dark pixels: the printed code


def test_svg_is_xml_with_the_code_as_text(settings):
    svg = labels.label_svg("7k3qf m9x2d")
    root = ET.fromstring(svg.encode())
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}text").text == "7K3QF-M9X2D"


def test_svg_symbol_decodes_to_the_claim_url(settings):
    svg = labels.label_svg("7K3QF-M9X2D")
    assert decode(rasterize(svg)) == [f"{settings.PORTAL_BASE_URL}/c/7K3QFM9X2D"]


def test_inline_svg_for_a_page_has_no_style_attribute():
    markup = labels.qr_svg_inline("https://portal.example.com/c/7K3QFM9X2D")
    assert "style=" not in markup
    assert decode(rasterize(markup)) == ["https://portal.example.com/c/7K3QFM9X2D"]


def test_label_data_makes_no_query_and_draws_a_batch_code_once(django_assert_num_queries):
    batch = ClaimCodeFactory()
    DeviceFactory.create_batch(3, claim_code=batch)
    DeviceFactory(claim_code=None, serial="NOCODE-1")
    devices = list(labels.Device.objects.select_related("product", "claim_code").order_by("serial"))
    with django_assert_num_queries(0):
        sheet, skipped = labels.labels_for_devices(devices)
    assert [device.serial for device in skipped] == ["NOCODE-1"]
    assert len(sheet) == 3 and len({id(label.qr_svg) for label in sheet}) == 1
    assert sheet[0].code == codes.display(batch.raw_code)


def test_pages_hold_21_labels():
    assert [len(page) for page in labels.label_pages(list(range(45)))] == [21, 21, 3]


# --- admin pages ------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_png_download_decodes(staff_client, settings):
    device = DeviceFactory(claim_code=ClaimCodeFactory(raw_code="7K3QF-M9X2D"), serial="SN/1")
    response = staff_client.get(reverse("admin:devices_device_label_png", args=[device.pk]))
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="label-SN_1.png"'
    assert decode(Image.open(io.BytesIO(response.content))) == [f"{settings.PORTAL_BASE_URL}/c/7K3QFM9X2D"]


def test_svg_download_has_the_code(staff_client):
    device = DeviceFactory(claim_code=ClaimCodeFactory(raw_code="7K3QF-M9X2D"))
    response = staff_client.get(reverse("admin:devices_device_label_svg", args=[device.pk]))
    assert response["Content-Type"].startswith("image/svg+xml")
    assert ET.fromstring(response.content).find(f"{SVG}text").text == "7K3QF-M9X2D"


def test_device_without_code_has_no_label(staff_client):
    device = DeviceFactory(claim_code=None)
    response = staff_client.get(reverse("admin:devices_device_label_png", args=[device.pk]))
    assert response.status_code == HTTPStatus.FOUND


def test_sheet_shows_serial_product_code_and_symbol(staff_client):
    device = DeviceFactory(serial="SN-42", claim_code=ClaimCodeFactory(raw_code="7K3QF-M9X2D"))
    response = staff_client.get(reverse("admin:devices_device_labels") + f"?ids={device.pk}")
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "SN-42" in html and "Thermo" in html and "7K3QF-M9X2D" in html
    assert html.count('class="qr"') == 1
    assert "style=" not in html and "<script" not in html  # the CSP allows neither inline
    assert "css/labels.css" in html


def test_sheet_lists_devices_left_out(staff_client):
    with_code = DeviceFactory(claim_code=ClaimCodeFactory())
    without = DeviceFactory(serial="NOCODE-9", claim_code=None)
    response = staff_client.get(reverse("admin:devices_device_labels") + f"?ids={with_code.pk},{without.pk}")
    assert "Left out, without a claim code: NOCODE-9" in response.content.decode()


def test_sheet_rejects_malformed_ids(staff_client):
    response = staff_client.get(reverse("admin:devices_device_labels") + "?ids=1,2")
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_print_action_renders_the_sheet_in_pages(staff_client):
    code = ClaimCodeFactory()
    devices = DeviceFactory.create_batch(22, claim_code=code)
    response = staff_client.post(
        reverse("admin:devices_device_changelist"),
        {"action": "print_labels", "_selected_action": [str(d.pk) for d in devices]},
    )
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert html.count('<section class="page"') == 2
    assert html.count('<figure class="label">') == 22


def test_labels_need_permission_to_see_claim_codes(client):
    oem = UserFactory(is_staff=True)
    oem.user_permissions.add(Permission.objects.get(codename="view_device"))
    client.force_login(oem)
    device = DeviceFactory(claim_code=ClaimCodeFactory())
    assert client.get(reverse("admin:devices_device_label_png", args=[device.pk])).status_code == HTTPStatus.FORBIDDEN
    response = client.get(reverse("admin:devices_device_labels") + f"?ids={device.pk}")
    assert response.status_code == HTTPStatus.FORBIDDEN
    changelist = client.get(reverse("admin:devices_device_changelist")).content.decode()
    assert "print_labels" not in changelist
