"""The OEM admin: a device list whose queries do not grow with the devices, owner privacy, search
and filters, claim codes that never show in lists, and the CSV import page."""

import csv
import io
from http import HTTPStatus

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from devices import admin as device_admin
from devices import codes
from devices.models import ClaimCode, Device, Product
from portal.secrets import digests_match
from tests.factories import ClaimCodeFactory, DeviceFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/devices/device/"
IMPORT = "/admin/devices/device/import/"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def oem_user(*codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="devices", codename__in=codenames))
    return user


@pytest.fixture
def oem_client(client):
    """An OEM admin who manages devices but was not granted to see owners."""
    client.force_login(oem_user("view_device", "change_device", "view_product", "view_claimcode"))
    return client


@pytest.fixture
def privileged_client(client):
    client.force_login(oem_user("view_device", "change_device", "view_claimcode", "view_device_owner"))
    return client


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


# --- the device list at scale --------------------------------------------------------------------


def _changelist_queries(client, url=CHANGELIST):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == HTTPStatus.OK
    return len(queries)


@pytest.mark.parametrize("url", [CHANGELIST, CHANGELIST + "?owned=no&status=never_seen", CHANGELIST + "?q=SN"])
def test_device_list_queries_do_not_grow_with_devices(privileged_client, django_assert_max_num_queries, url):
    product = ProductFactory()
    owner = UserFactory()
    DeviceFactory.create_batch(30, product=product, owner=owner, claim_code=ClaimCodeFactory())
    baseline = _changelist_queries(privileged_client, url)
    DeviceFactory.create_batch(270, product=product, owner=owner, claim_code=ClaimCodeFactory())
    # Session, user, the user's and groups' permissions, the page count, the page of devices with
    # product and owner joined, the products for the filter: never a query per device.
    with django_assert_max_num_queries(baseline):
        response = privileged_client.get(url)
    assert response.status_code == HTTPStatus.OK


def test_device_list_query_count(staff_client, django_assert_num_queries):
    DeviceFactory.create_batch(120)
    # 1 session, 2 user, 3 count, 4 the page (product and owner joined), 5 products for the filter;
    # PostgreSQL first asks the planner's estimate, and counts exactly as the table is small.
    with django_assert_num_queries(6 if connection.vendor == "postgresql" else 5):
        staff_client.get(CHANGELIST)


def test_device_list_pages_by_100(staff_client):
    DeviceFactory.create_batch(101)
    html = staff_client.get(CHANGELIST).content.decode()
    assert html.count('name="_selected_action"') == 100


def test_estimated_count_skips_count_on_a_large_unfiltered_table(requires_postgres, monkeypatch):
    DeviceFactory.create_batch(40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE devices_device")
    monkeypatch.setattr(device_admin.EstimatedCountPaginator, "ESTIMATE_FROM", 10)
    paginator = device_admin.EstimatedCountPaginator(Device.objects.all(), 100)
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 40
    assert "reltuples" in queries[0]["sql"] and "COUNT(" not in queries[0]["sql"].upper()


def test_estimated_count_counts_filtered_lists_exactly(db):
    DeviceFactory.create_batch(3, status="online")
    DeviceFactory(status="offline")
    paginator = device_admin.EstimatedCountPaginator(Device.objects.filter(status="online"), 100)
    assert paginator.count == 3


def test_search_by_serial_prefix_uses_the_index(requires_postgres):
    model_admin = django_admin.site._registry[Device]
    queryset, _ = model_admin.get_search_results(None, Device.objects.all(), "sn-0")
    sql = str(queryset.query)
    assert "UPPER" not in sql and "LIKE" in sql  # LIKE 'SN-0%' is what the serial's _like index serves


# --- privacy ------------------------------------------------------------------------------------


def test_owner_hidden_without_the_permission(oem_client, owner):
    device = DeviceFactory(owner=owner, serial="OWNED-1")
    listing = oem_client.get(CHANGELIST).content.decode()
    page = oem_client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    for html in (listing, page):
        assert "OWNED-1" in html
        assert owner.email not in html
    assert "column-owner_email" not in listing and "column-is_owned" in listing


def test_owner_shown_with_the_permission(privileged_client, owner):
    device = DeviceFactory(owner=owner, serial="OWNED-1")
    listing = privileged_client.get(CHANGELIST).content.decode()
    page = privileged_client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    assert owner.email in listing and "column-owner_email" in listing
    assert owner.email in page


def test_owner_cannot_be_edited_in_the_admin(staff_client, owner, other_owner):
    # Ownership changes go through the claiming services (audit trail, new credentials).
    device = DeviceFactory(owner=owner)
    staff_client.post(
        reverse("admin:devices_device_change", args=[device.pk]),
        {"product": device.product_id, "name": "", "claim_code": "", "owner": other_owner.pk},
    )
    device.refresh_from_db()
    assert device.owner == owner


# --- search and filters -------------------------------------------------------------------------


def _serials(client, query):
    html = client.get(CHANGELIST + query).content.decode()
    return sorted(d.serial for d in Device.objects.all() if f">{d.serial}<" in html)


def test_search_finds_exact_serial_and_prefix(oem_client):
    for serial in ["AB-100", "AB-101", "AB-200", "ZZ-100"]:
        DeviceFactory(serial=serial)
    assert _serials(oem_client, "?q=AB-101") == ["AB-101"]
    assert _serials(oem_client, "?q=AB-1") == ["AB-100", "AB-101"]
    assert _serials(oem_client, "?q=ab-2") == ["AB-200"]  # typed in lower case


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?owned=yes", ["OWNED"]),
        ("?owned=no", ["FREE-OFF", "FREE-ON"]),
        ("?status__exact=online", ["FREE-ON"]),
        ("?claimable__exact=1", ["FREE-ON"]),
    ],
)
def test_filters(oem_client, owner, query, expected):
    DeviceFactory(serial="OWNED", owner=owner, claimable=False)
    DeviceFactory(serial="FREE-ON", status="online", claimable=True, raw_pin="1234")
    DeviceFactory(serial="FREE-OFF", status="offline", claimable=False)
    assert _serials(oem_client, query) == expected


def test_filter_by_product(oem_client):
    other = ProductFactory(slug="other")
    DeviceFactory(serial="T-1")
    DeviceFactory(serial="O-1", product=other)
    assert _serials(oem_client, f"?product__id__exact={other.pk}") == ["O-1"]


def test_devices_of_a_claim_code(oem_client):
    code = ClaimCodeFactory()
    DeviceFactory(serial="IN-1", claim_code=code)
    DeviceFactory(serial="OUT-1")
    assert _serials(oem_client, f"?claim_code__id__exact={code.pk}") == ["IN-1"]


# --- the device form ----------------------------------------------------------------------------


def _change(client, device, **data):
    form = {"product": device.product_id, "name": device.name, "claim_code": device.claim_code_id or ""}
    return client.post(reverse("admin:devices_device_change", args=[device.pk]), {**form, **data})


def test_saving_the_form_keeps_concurrent_check_ins(staff_client):
    device = DeviceFactory(status="never_seen")
    Device.objects.filter(pk=device.pk).update(status="online", values={"t": 21})  # a check-in meanwhile
    response = _change(staff_client, device, name="Boiler room")
    assert response.status_code == HTTPStatus.FOUND
    device.refresh_from_db()
    assert device.name == "Boiler room"
    assert device.status == "online" and device.values == {"t": 21}


def test_claimable_needs_a_pin(staff_client):
    device = DeviceFactory(claimable=False)
    response = _change(staff_client, device, claimable="on")
    assert response.status_code == HTTPStatus.OK
    assert "cannot be claimable" in response.content.decode()
    device.refresh_from_db()
    assert device.claimable is False


def test_devices_are_not_added_by_hand(staff_client):
    assert staff_client.get("/admin/devices/device/add/").status_code == HTTPStatus.FORBIDDEN


def test_device_admin_is_extensible():
    # The claiming app adds its ownership actions by subclassing.
    assert isinstance(device_admin.DeviceAdmin.actions, list)
    assert "print_labels" in device_admin.DeviceAdmin.actions


# --- products and claim codes -------------------------------------------------------------------


def test_product_commands_must_be_a_list_of_names(staff_client):
    product = ProductFactory(slug="p1", name="P1")
    data = {
        "name": "P1",
        "slug": "p1",
        "description": "",
        "offline_after": 600,
        "checkin_interval": 60,
        "poll_cap": 300,
        "certificate_days": 365,
        # the product fields' inline (its management form; no fields declared)
        "fields-TOTAL_FORMS": "0",
        "fields-INITIAL_FORMS": "0",
    }
    url = reverse("admin:devices_product_change", args=[product.pk])
    assert staff_client.post(url, {**data, "commands": '{"reboot": 1}'}).status_code == HTTPStatus.OK
    assert staff_client.post(url, {**data, "commands": '["reboot", " beep "]'}).status_code == HTTPStatus.FOUND
    product.refresh_from_db()
    assert product.commands == ["reboot", "beep"]


def test_product_list_counts_devices(staff_client):
    DeviceFactory.create_batch(3)
    html = staff_client.get("/admin/devices/product/").content.decode()
    assert ">3</a>" in html


def test_claim_code_list_never_shows_codes(staff_client):
    code = ClaimCodeFactory(raw_code="7K3QF-M9X2D")
    DeviceFactory.create_batch(2, claim_code=code)
    html = staff_client.get("/admin/devices/claimcode/").content.decode()
    assert "7K3QF" not in html and "M9X2D" not in html
    assert '<td class="field-device_count">2</td>' in html


def test_claim_code_search_by_the_printed_code(staff_client):
    wanted = ClaimCodeFactory(raw_code="7K3QF-M9X2D")
    other = ClaimCodeFactory()
    html = staff_client.get("/admin/devices/claimcode/?q=7k3qf m9x2d").content.decode()
    assert f"Claim code #{wanted.pk}<" in html and f"Claim code #{other.pk}<" not in html


def test_claim_code_page_shows_the_code_for_reprinting(staff_client):
    code = ClaimCodeFactory(raw_code="7K3QF-M9X2D")
    html = staff_client.get(reverse("admin:devices_claimcode_change", args=[code.pk])).content.decode()
    assert "7K3QF-M9X2D" in html


# --- the import page ----------------------------------------------------------------------------


def _upload(client, content, *, product="thermo", batch_code=False):
    data = {"file": SimpleUploadedFile("devices.csv", content.encode()), "product": product}
    if batch_code:
        data["batch_code"] = "on"
    return client.post(IMPORT, data)


def test_changelist_links_the_import(staff_client):
    assert f'href="{IMPORT}"' in staff_client.get(CHANGELIST).content.decode()


def test_import_previews_without_writing(staff_client):
    response = _upload(staff_client, "serial,pin\nSN-1,1234\nSN-2,\n", product="brand-new")
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "SN-1" in html and "SN-2" in html
    assert "a new product: it will be created" in html
    assert "Register 2 devices" in html
    assert not Device.objects.exists() and not Product.objects.filter(slug="brand-new").exists()


def test_import_preview_shows_errors_and_no_confirm(staff_client):
    response = _upload(staff_client, "serial\nSN-1\nSN-1\n")
    html = response.content.decode()
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Line 3: serial SN-1 appears twice" in html
    assert 'name="confirm"' not in html


def _confirm(client, preview):
    token = preview.context["token"]
    return client.post(IMPORT, {"confirm": "1", "token": token})


def test_import_confirm_registers_and_offers_the_result_once(staff_client):
    preview = _upload(staff_client, "serial\nSN-1\nSN-2\n", batch_code=True)
    response = _confirm(staff_client, preview)
    assert response.status_code == HTTPStatus.FOUND
    assert Device.objects.count() == 2 and ClaimCode.objects.count() == 1

    result_page = staff_client.get(response["Location"])
    assert "2 devices" in result_page.content.decode()
    download = staff_client.get(response["Location"] + "result.csv")
    assert download["Content-Disposition"].startswith('attachment; filename="devices-thermo-')
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    device = Device.objects.get(serial=rows[0]["serial"])
    assert digests_match(rows[0]["factory_key"], device.factory_key_digest, purpose="factory-key")
    assert device.claim_code.digest == codes.digest(rows[0]["claim_code"])

    # Confirming twice registers nothing more; removing the result makes it unavailable.
    again = _confirm(staff_client, preview)
    assert again["Location"] == IMPORT and Device.objects.count() == 2
    staff_client.post(response["Location"])
    assert staff_client.get(response["Location"]).status_code == HTTPStatus.NOT_FOUND


def test_import_result_belongs_to_its_uploader(staff_client, client):
    response = _confirm(staff_client, _upload(staff_client, "serial\nSN-1\n"))
    other = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(other)
    assert client.get(response["Location"] + "result.csv").status_code == HTTPStatus.FOUND  # back, not the file


def test_import_confirm_rechecks_the_file(staff_client):
    preview = _upload(staff_client, "serial\nSN-1\n")
    DeviceFactory(serial="SN-1")  # registered meanwhile
    response = _confirm(staff_client, preview)
    assert response["Location"] == IMPORT
    assert Device.objects.count() == 1


def test_import_needs_the_add_permission(oem_client):
    assert oem_client.get(IMPORT).status_code == HTTPStatus.FORBIDDEN
    assert f'href="{IMPORT}"' not in oem_client.get(CHANGELIST).content.decode()
