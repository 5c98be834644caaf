"""register_devices and the registration service: generated secrets, imported ones, batch codes,
refusal of bad files as a whole, and a query count that does not grow with the file."""

import csv
import io
import re
import stat

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices import codes
from devices.models import ClaimCode, Device, Product
from devices.registration import (
    RegisteredDevice,
    RegistrationRefused,
    registration_import,
    registration_plan,
    registration_result_csv,
)
from devices.services import factory_key_digest, pin_digest
from portal import spreadsheet
from portal.secrets import decrypt, digests_match
from tests.factories import ClaimCodeFactory, DeviceFactory

pytestmark = pytest.mark.django_db

DISPLAY = re.compile(r"^[0-9A-Z]{5}-[0-9A-Z]{5}$")


@pytest.fixture
def register(tmp_path):
    """Writes `text` (or bytes) as a CSV file, runs the command, returns the result rows."""

    def run(content, *, product="thermo", batch_code=False, output=None):
        source = tmp_path / "devices.csv"
        source.write_bytes(content if isinstance(content, bytes) else content.encode())
        output = output or tmp_path / "result.csv"
        args = [str(source), "--product", product, "--output", str(output)]
        call_command("register_devices", *args, *(["--batch-code"] if batch_code else []))
        with output.open(newline="") as stream:
            return list(csv.DictReader(stream))

    return run


def test_generates_factory_keys_and_codes(register, settings):
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    rows = register("serial\nSN-1\nSN-2\n")
    assert [row["serial"] for row in rows] == ["SN-1", "SN-2"]
    for row in rows:
        device = Device.objects.get(serial=row["serial"])
        assert len(row["factory_key"]) == 43  # 32 random bytes, URL-safe base64
        assert digests_match(row["factory_key"], device.factory_key_digest, purpose="factory-key")
        assert DISPLAY.match(row["claim_code"])
        normal = codes.normalize(row["claim_code"])
        assert row["claim_url"] == f"https://portal.example.com/c/{normal}"
        assert device.claim_code.digest == codes.digest(normal)
        assert decrypt(device.claim_code.code_encrypted) == normal
        assert device.pin_digest == "" and device.claimable is False
    assert rows[0]["claim_code"] != rows[1]["claim_code"]


def test_creates_the_product_when_missing(register):
    register("serial\nSN-1\n", product="new-sensor")
    product = Product.objects.get(slug="new-sensor")
    assert product.name == "New Sensor"
    assert Device.objects.get(serial="SN-1").product == product


def test_keeps_imported_keys_codes_and_pins(register):
    key = "factory-key-from-the-line-0001"
    rows = register(f"serial,factory_key,claim_code,pin,claimable\nSN-1,{key},abcde fghjk,4711,yes\n")
    device = Device.objects.get(serial="SN-1")
    assert rows[0]["factory_key"] == key
    assert device.factory_key_digest == factory_key_digest(key)
    assert rows[0]["claim_code"] == "ABCDE-FGHJK"
    assert device.claim_code.digest == codes.digest("ABCDEFGHJK")
    assert device.pin_digest == pin_digest("4711") and device.claimable is True


def test_imported_codes_of_another_shape_are_normalised(register, settings):
    rows = register("serial,claim_code\nSN-1,old-label-7\n")
    assert rows[0]["claim_url"] == f"{settings.PORTAL_BASE_URL}/c/01D1ABE17"  # O→0, L→1, hyphens dropped
    assert Device.objects.get(serial="SN-1").claim_code.digest == codes.digest("OLD LABEL 7")


def test_rows_with_the_same_imported_code_share_one_claim_code(register):
    register("serial,claim_code\nSN-1,ABCDE-12345\nSN-2,abcde12345\n")
    assert ClaimCode.objects.count() == 1
    assert ClaimCode.objects.get().devices.count() == 2


def test_batch_code_gives_every_device_one_code(register):
    rows = register("serial\nSN-1\nSN-2\nSN-3\n", batch_code=True)
    assert len({row["claim_code"] for row in rows}) == 1
    assert DISPLAY.match(rows[0]["claim_code"])
    assert ClaimCode.objects.get().devices.count() == 3
    assert len({row["factory_key"] for row in rows}) == 3


def test_a_pin_without_claimable_makes_the_device_claimable(register):
    register("serial,pin,claimable\nSN-1,4711,\nSN-2,4712,no\n")
    assert Device.objects.get(serial="SN-1").claimable is True
    assert Device.objects.get(serial="SN-2").claimable is False


def test_result_file_is_readable_by_its_owner_only(register, tmp_path):
    register("serial\nSN-1\n")
    assert stat.S_IMODE((tmp_path / "result.csv").stat().st_mode) == 0o600


def test_accepts_a_byte_order_mark_and_blank_lines(register):
    register("\ufeffserial,claimable\r\nSN-1,no\r\n\r\n,\r\n".encode())
    assert list(Device.objects.values_list("serial", flat=True)) == ["SN-1"]


BAD_FILES = [
    pytest.param("serial\nSN-1\nSN-2\nSN-1\n", "Line 4: serial SN-1 appears twice in the file (first on line 2)",
                 id="duplicate-serial"),
    pytest.param("serial,pin\nSN-1,1234\n,1234\n", "Line 3: the serial is empty", id="empty-serial"),
    pytest.param("serial,colour\nSN-1,red\n", "Line 1: unknown column “colour”", id="unknown-column"),
    pytest.param("factory_key\nabcdefghijklmnopq\n", "Line 1: the column “serial” is required", id="no-serial-column"),
    pytest.param(b"serial\nSN-1\nSN-\xe9\n", "Line 3: the file is not UTF-8", id="bad-utf8"),
    pytest.param("serial,claimable\nSN-1,perhaps\n", "Line 2: claimable is “perhaps”", id="bad-claimable"),
    pytest.param("serial,claimable\nSN-1,yes\n", "Line 2: claimable is yes but the row has no PIN",
                 id="claimable-without-pin"),
    pytest.param("serial,pin\nSN-1,12\n", "Line 2: a PIN is 4 to 32 letters and digits", id="short-pin"),
    pytest.param("serial,factory_key\nSN-1,short\n", "Line 2: a factory key has 16 to 200", id="short-key"),
    pytest.param("serial,claim_code\nSN-1,AB\n", "Line 2: a claim code has 6 to 64", id="short-code"),
    pytest.param("serial\nSN 1\n", "Line 2: the serial “SN 1” has characters outside", id="space-in-serial"),
    # A spreadsheet runs a cell that begins with = + - @ as a formula; serials and keys are plain.
    pytest.param('serial\n"=HYPERLINK(""https://x.example"",""SN"")"\n', "Line 2: the serial “=HYPERLINK",
                 id="formula-serial"),
    pytest.param("serial\n+SN1\n", "Line 2: the serial “+SN1” has characters outside", id="plus-serial"),
    pytest.param("serial\n@SN1\n", "Line 2: the serial “@SN1” has characters outside", id="at-serial"),
    pytest.param("serial\n-SN1\n", "Line 2: the serial “-SN1” has characters outside", id="minus-serial"),
    # ":" ends the serial in a device's Basic credentials; "/" is a level of its MQTT topics.
    pytest.param("serial\nACME:0001\n", "Line 2: the serial “ACME:0001” has characters outside", id="colon-serial"),
    pytest.param("serial\nA/B\n", "Line 2: the serial “A/B” has characters outside", id="slash-serial"),
    pytest.param("serial\nSN-1\nsn-1\n", "Line 3: serial sn-1 appears twice in the file, whatever the case",
                 id="serial-twice-in-two-cases"),
    pytest.param("serial\nSN\u00e91\n", "Line 2: the serial “SN\u00e91” has characters outside", id="non-ascii-serial"),
    pytest.param("serial,factory_key\nSN-1,=cmd|'/C calc'!A0aaaaaaaa\n", "Line 2: a factory key is letters",
                 id="formula-key"),
    pytest.param("serial,factory_key\nSN-1,-abcdefghijklmnopq\n", "Line 2: a factory key is letters", id="minus-key"),
    pytest.param("serial,pin\nSN-1\n", "Line 2: 1 values, but the header names 2 columns", id="short-row"),
    pytest.param("", "Line 1: the file is empty", id="empty-file"),
    pytest.param("serial\n", "Line 1: the file has a header but no devices", id="header-only"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_refuses_a_bad_file_whole(register, tmp_path, content, message):
    with pytest.raises(CommandError) as refused:
        register(content, product="refused-product")
    assert message in str(refused.value)
    assert not Device.objects.exists()
    assert not ClaimCode.objects.exists()
    assert not Product.objects.filter(slug="refused-product").exists()
    assert not (tmp_path / "result.csv").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["devices.csv"]


def test_refuses_serials_already_registered(register):
    DeviceFactory(serial="SN-2")
    with pytest.raises(CommandError, match="Line 3: serial SN-2 is already registered"):
        register("serial\nSN-1\nSN-2\n")
    assert list(Device.objects.values_list("serial", flat=True)) == ["SN-2"]


def test_refuses_a_serial_registered_in_another_case(register):
    DeviceFactory(serial="SN-2")
    with pytest.raises(CommandError, match="Line 2: serial SN-2 is already registered"):
        register("serial\nsn-2\n")


def test_refuses_an_imported_code_another_device_uses(register):
    code = ClaimCodeFactory()
    DeviceFactory(serial="OLD-1", claim_code=code)
    with pytest.raises(CommandError, match="Line 2: this claim code already belongs to other devices"):
        register(f"serial,claim_code\nSN-1,{code.raw_code}\n")
    assert not Device.objects.filter(serial="SN-1").exists()


def test_claim_codes_and_batch_code_together_are_refused(register):
    with pytest.raises(CommandError, match="Line 2: --batch-code gives every device one new code"):
        register("serial,claim_code\nSN-1,ABCDE-12345\n", batch_code=True)


def test_names_every_bad_line_in_order(register):
    with pytest.raises(CommandError) as refused:
        register("serial,claimable\nSN-1,maybe\n,no\nSN-1,no\n")
    lines = [line for line in str(refused.value).splitlines() if line.startswith("Line ")]
    assert [line.split(":")[0] for line in lines] == ["Line 2", "Line 3", "Line 4"]


def test_does_not_overwrite_an_earlier_result(register, tmp_path):
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("serial,factory_key\nA,secret\n")
    with pytest.raises(CommandError, match="may hold the only copy"):
        register("serial\nSN-1\n", output=earlier)
    assert earlier.read_text() == "serial,factory_key\nA,secret\n"
    assert not Device.objects.exists()


def test_reports_progress_on_stderr(tmp_path, capsys):
    source = tmp_path / "devices.csv"
    source.write_text("serial\nSN-1\nSN-2\n")
    call_command("register_devices", str(source), "--product", "thermo", "--output", str(tmp_path / "out.csv"))
    captured = capsys.readouterr()
    assert "2 / 2 devices" in captured.err
    assert "Registered 2 devices" in captured.out


def test_plan_keeps_a_bounded_number_of_errors():
    data = ("serial\n" + "\n".join(",x" for _ in range(200))).encode()
    plan = registration_plan(data=data)
    assert plan.error_count == 200
    assert len(plan.errors) == 51 and plan.errors[-1] == "… and 150 more problems."


def test_service_refuses_with_every_error():
    with pytest.raises(RegistrationRefused) as refused:
        registration_import(data=b"serial\nSN-1\nSN-1\n", product_slug="thermo")
    assert refused.value.errors == ["Line 3: serial SN-1 appears twice in the file (first on line 2)."]


def test_service_refuses_a_bad_product_slug():
    with pytest.raises(Exception, match="not a valid product slug"):
        registration_import(data=b"serial\nSN-1\n", product_slug="no spaces")
    assert not Device.objects.exists()


def _queries_for(rows):
    data = ("serial,pin\n" + "".join(f"Q{rows}-{i},1234\n" for i in range(rows))).encode()
    with CaptureQueriesContext(connection) as queries:
        registration_import(data=data, product_slug="thermo")
    return len(queries)


def test_no_query_per_row():
    # Product, serial check, code check, then the INSERTs in batches: a few statements on
    # PostgreSQL; on SQLite its 999-parameter limit cuts the INSERTs into ~80 rows each.
    limit = 10 if connection.vendor == "postgresql" else 50
    assert _queries_for(1000) <= limit


def test_a_long_file_on_postgresql_is_inserted_in_batches(requires_postgres):
    # More than one INSERT batch, with the lookups at PostgreSQL's chunk size.
    data = ("serial\n" + "".join(f"PG-{i:05d}\n" for i in range(4500))).encode()
    with CaptureQueriesContext(connection) as queries:
        results = registration_import(data=data, product_slug="thermo", batch_code=True)
    assert len(results) == 4500 and Device.objects.count() == 4500
    inserts = [q for q in queries if q["sql"].startswith('INSERT INTO "devices_device"')]
    assert len(inserts) == 3


def test_the_result_file_neutralises_cells_a_spreadsheet_would_run():
    stream = io.StringIO()
    registration_result_csv(
        [
            RegisteredDevice("=1+1", "+cmd", "@SUM(A1)", "-2"),
            RegisteredDevice("\tSN", "\t=SN", "SN-1", "https://portal.example/c/X"),
        ],
        stream,
    )
    rows = list(csv.reader(io.StringIO(stream.getvalue(), newline="")))
    assert rows[1] == ["'=1+1", "'+cmd", "'@SUM(A1)", "'-2"]
    assert rows[2] == ["'\tSN", "'\t=SN", "SN-1", "https://portal.example/c/X"]
    assert spreadsheet.cell("\r=1") == "'\r=1"


def test_a_generated_factory_key_never_begins_like_a_formula(register, monkeypatch):
    # token_urlsafe begins with "-" once in 64 draws: such a key would be altered by the result file.
    drawn = iter(["-" + "a" * 42, "b" * 43])
    monkeypatch.setattr("devices.registration.random_token", lambda: next(drawn))
    rows = register("serial\nSN-1\n")
    assert rows[0]["factory_key"] == "b" * 43
    device = Device.objects.get(serial="SN-1")
    assert digests_match("b" * 43, device.factory_key_digest, purpose="factory-key")
