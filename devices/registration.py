"""Bulk registration of devices from a CSV file: the `register_devices` command and the admin
import page both go through here.

A file is checked whole before anything is written (`registration_plan`); one bad row refuses
the file, with a message per problem naming its line. The import itself (`registration_import`)
runs in one transaction with bulk inserts, so 100,000 rows take seconds: digests are computed
once per row in Python and the database sees a few hundred statements, never one per row.

Factory keys and claim codes that the file leaves empty are generated here; the result (the
output CSV) is the only place a generated factory key ever appears.
"""

import csv
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Upper

from portal import spreadsheet
from portal.errors import ValidationError
from portal.secrets import encrypt, random_token

from . import codes
from .labels import claim_url
from .models import ClaimCode, Device, Product
from .services import PIN_RULE, factory_key_digest, pin_digest, pin_validate

logger = logging.getLogger(__name__)

COLUMNS = ("serial", "factory_key", "claim_code", "pin", "claimable")
RESULT_COLUMNS = ("serial", "factory_key", "claim_code", "claim_url")
MAX_ERRORS = 50
# Values per IN (…) lookup: SQLite allows 999 bound parameters; PostgreSQL takes far more.
LOOKUP_CHUNK = {"sqlite": 900}
LOOKUP_CHUNK_DEFAULT = 10_000
INSERT_BATCH = 2000
SERIAL_MAX_LENGTH = Device._meta.get_field("serial").max_length
# A factory key lets a device collect its owner's credentials, so a short, guessable one is refused.
FACTORY_KEY_MIN_LENGTH = 16
FACTORY_KEY_MAX_LENGTH = 200
CODE_MIN_LENGTH = 6
CODE_MAX_LENGTH = 64
# The documented character sets (docs/operations.md, "Registering devices"): plain ASCII that no
# spreadsheet reads as a formula and no label, URL or log line needs escaped.
# No ":" (it ends the serial in the device's Basic credentials) and no "/" (a topic level on MQTT).
SERIAL_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Hex, base64 and base64url keys all fit.
FACTORY_KEY_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~+/=-]*")
TRUE_WORDS = {"1", "true", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "no", "n", "off"}


@dataclass(frozen=True)
class RegistrationRow:
    line: int
    serial: str
    factory_key: str  # empty: generated at import
    claim_code: str  # normalised; empty: generated at import (or the batch code)
    pin: str
    claimable: bool


@dataclass
class RegistrationPlan:
    """A checked file: its rows, and every problem found (at most MAX_ERRORS are kept)."""

    rows: list[RegistrationRow] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    batch_code: bool = False

    @property
    def ok(self) -> bool:
        return self.error_count == 0 and bool(self.rows)

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.problems) < MAX_ERRORS:
            self.problems.append((line, message))

    @property
    def errors(self) -> list[str]:
        """Each problem as "Line N: …", in line order, with a count of those left out."""
        shown = [f"Line {line}: {message}" for line, message in sorted(self.problems, key=lambda p: p[0])]
        hidden = self.error_count - len(self.problems)
        return shown + ([f"… and {hidden} more problems."] if hidden else [])


@dataclass(frozen=True)
class RegisteredDevice:
    serial: str
    factory_key: str
    claim_code: str  # human-readable, XXXXX-XXXXX for generated codes
    claim_url: str


class RegistrationRefused(ValidationError):
    code = "registration_refused"

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("The file was refused; nothing was registered.\n" + "\n".join(errors))


def registration_plan(*, data: bytes, batch_code: bool = False) -> RegistrationPlan:
    """Reads and checks a whole registration file; writes nothing.

    Refused: bytes that are not UTF-8, a header without `serial` or with an unknown column, an
    empty or malformed serial, a serial twice in the file or already registered, malformed
    factory keys, codes or PINs, a `claimable` that is not yes/no (or yes without a PIN), a
    claim code another device already uses, and claim codes together with --batch-code.
    """
    plan = RegistrationPlan(batch_code=batch_code)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        plan.add_error(line, "the file is not UTF-8 text. Save it as “CSV UTF-8” and try again.")
        return plan

    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(name.strip() for name in header):
        plan.add_error(1, "the file is empty; the first line names the columns, e.g. serial,factory_key.")
        return plan
    columns = [name.strip().lower() for name in header]
    for name in columns:
        if name not in COLUMNS:
            plan.add_error(1, f"unknown column “{name}”. The columns are: {', '.join(COLUMNS)}.")
        elif columns.count(name) > 1:
            plan.add_error(1, f"column “{name}” appears twice.")
    if "serial" not in columns:
        plan.add_error(1, "the column “serial” is required.")
    if plan.error_count:
        return plan

    first_line_of: dict[str, tuple[int, str]] = {}  # serial as read (upper case) -> (line, as written)
    try:
        for values in reader:
            _plan_row(plan, reader.line_num, columns, values, first_line_of)
    except csv.Error as exc:
        plan.add_error(reader.line_num, f"the CSV is malformed ({exc}).")
        return plan
    if not plan.rows and not plan.error_count:
        plan.add_error(1, "the file has a header but no devices.")
        return plan

    _check_database(plan)
    return plan


def _plan_row(plan, line, columns, values, first_line_of):
    if not any(value.strip() for value in values):
        return  # blank lines, and the empty rows spreadsheets leave at the end
    if len(values) != len(columns):
        plan.add_error(line, f"{len(values)} values, but the header names {len(columns)} columns.")
        return
    row = dict(zip(columns, (value.strip() for value in values), strict=True))
    errors_before = plan.error_count

    serial = row["serial"]
    if not serial:
        plan.add_error(line, "the serial is empty.")
    elif len(serial) > SERIAL_MAX_LENGTH:
        plan.add_error(line, f"the serial is longer than {SERIAL_MAX_LENGTH} characters.")
    elif not SERIAL_CHARS.fullmatch(serial):
        plan.add_error(
            line, f"the serial “{serial}” has characters outside A–Z, a–z, 0–9 and . _ - "
            "(and begins with a letter or digit)."
        )
    elif serial.upper() in first_line_of:
        # A label is read without regard to case (a PIN claim matches it so), so two serials that
        # differ only in case would be one device to whoever types it.
        first, spelled = first_line_of[serial.upper()]
        whatever_case = "" if spelled == serial else ", whatever the case"
        plan.add_error(line, f"serial {serial} appears twice in the file{whatever_case} (first on line {first}).")
    else:
        first_line_of[serial.upper()] = (line, serial)

    factory_key = row.get("factory_key", "")
    if factory_key and not FACTORY_KEY_MIN_LENGTH <= len(factory_key) <= FACTORY_KEY_MAX_LENGTH:
        plan.add_error(
            line, f"a factory key has {FACTORY_KEY_MIN_LENGTH} to {FACTORY_KEY_MAX_LENGTH} characters; leave it "
            "empty to have one generated."
        )
    elif factory_key and not FACTORY_KEY_CHARS.fullmatch(factory_key):
        plan.add_error(
            line, "a factory key is letters A–Z and a–z, digits and . _ ~ + / = - (hex, base64 or base64url), "
            "beginning with a letter or digit."
        )

    code = codes.normalize(row.get("claim_code", ""))
    if code and plan.batch_code:
        plan.add_error(line, "--batch-code gives every device one new code; leave the claim_code column empty.")
    elif code and not (CODE_MIN_LENGTH <= len(code) <= CODE_MAX_LENGTH and code.isascii() and code.isalnum()):
        plan.add_error(
            line, f"a claim code has {CODE_MIN_LENGTH} to {CODE_MAX_LENGTH} letters and digits (hyphens and "
            "spaces are ignored)."
        )

    pin = row.get("pin", "")
    if pin:
        try:
            pin_validate(pin)  # the owner's PIN settings keep the same rule
        except ValidationError:
            plan.add_error(line, f"a PIN is {PIN_RULE}.")

    word = row.get("claimable", "").lower()
    if not word:
        claimable = bool(pin)  # no PIN means not claimable by PIN
    elif word in TRUE_WORDS:
        claimable = True
        if not pin:
            plan.add_error(line, "claimable is yes but the row has no PIN; claiming by serial needs one.")
    elif word in FALSE_WORDS:
        claimable = False
    else:
        plan.add_error(line, f"claimable is “{row['claimable']}”; write yes or no (or leave it empty).")
        return

    if plan.error_count == errors_before:
        plan.rows.append(
            RegistrationRow(
                line=line, serial=serial, factory_key=factory_key, claim_code=code, pin=pin, claimable=claimable
            )
        )


def _chunks(items):
    size = LOOKUP_CHUNK.get(connection.vendor, LOOKUP_CHUNK_DEFAULT)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_database(plan: RegistrationPlan) -> None:
    """Serials already registered and imported codes that already cover devices: a few IN queries."""
    line_of = {row.serial.upper(): row.line for row in plan.rows}
    taken = []
    for chunk in _chunks(list(line_of)):
        # Upper(serial) is indexed (device_serial_upper): the same reading as a PIN claim's.
        rows = Device.objects.annotate(serial_upper=Upper("serial")).filter(serial_upper__in=chunk)
        taken.extend(rows.values_list("serial", flat=True))
    for serial in sorted(taken, key=lambda serial: line_of[serial.upper()]):
        plan.add_error(line_of[serial.upper()], f"serial {serial} is already registered.")

    lines_by_digest: dict[str, list[int]] = {}
    for row in plan.rows:
        if row.claim_code:
            lines_by_digest.setdefault(codes.digest(row.claim_code), []).append(row.line)
    in_use = Device.objects.filter(claim_code=OuterRef("pk"))
    for chunk in _chunks(list(lines_by_digest)):
        used = ClaimCode.objects.filter(digest__in=chunk).filter(Exists(in_use)).values_list("digest", flat=True)
        for digest in used:
            line = lines_by_digest[digest][0]
            plan.add_error(line, "this claim code already belongs to other devices; each label needs its own code.")


def _product_for(slug: str, name: str = "") -> Product:
    try:
        validate_slug(slug)
    except DjangoValidationError:
        raise ValidationError(
            f"“{slug}” is not a valid product slug: use letters, digits, hyphens and underscores.",
            fields={"product": ["Use letters, digits, hyphens and underscores."]},
        ) from None
    product, created = Product.objects.get_or_create(
        slug=slug, defaults={"name": name or slug.replace("-", " ").replace("_", " ").title()}
    )
    if created:
        logger.info("product.created", extra={"product": slug})
    return product


@transaction.atomic
def registration_import(
    *,
    data: bytes,
    product_slug: str,
    product_name: str = "",
    batch_code: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[RegisteredDevice]:
    """Registers every device of a registration file, or none (RegistrationRefused).

    Creates the product if missing, then the claim codes (one per row, one shared by the file
    with `batch_code`, or the file's own codes, rows with the same code sharing it) and the
    devices, in bulk. Returns each device with its factory key and code in plain text: the
    caller hands them out once and they are never readable again.
    """
    plan = registration_plan(data=data, batch_code=batch_code)
    if not plan.ok:
        raise RegistrationRefused(plan.errors)
    product = _product_for(product_slug, product_name)
    total = len(plan.rows)

    shared = codes.generate() if batch_code else ""
    row_codes = [row.claim_code or shared or codes.generate() for row in plan.rows]
    claim_codes = {
        code: ClaimCode(digest=codes.digest(code), code_encrypted=encrypt(code)) for code in dict.fromkeys(row_codes)
    }
    # Imported codes known from an earlier, abandoned import (no devices) are reused, not duplicated.
    digests = [claim_code.digest for claim_code in claim_codes.values()]
    existing = {}
    for chunk in _chunks(digests):
        existing.update(ClaimCode.objects.filter(digest__in=chunk).values_list("digest", "pk"))
    new_codes = [claim_code for claim_code in claim_codes.values() if claim_code.digest not in existing]
    for claim_code in claim_codes.values():
        claim_code.pk = existing.get(claim_code.digest, claim_code.pk)

    results = []
    devices = []
    try:
        # bulk_create fills in the new primary keys (RETURNING on PostgreSQL and SQLite).
        ClaimCode.objects.bulk_create(new_codes, batch_size=INSERT_BATCH)
        for done, (row, code) in enumerate(zip(plan.rows, row_codes, strict=True), start=1):
            factory_key = row.factory_key or _factory_key_generate()
            devices.append(
                Device(
                    serial=row.serial,
                    product=product,
                    factory_key_digest=factory_key_digest(factory_key),
                    claim_code_id=claim_codes[code].pk,
                    pin_digest=pin_digest(row.pin) if row.pin else "",
                    claimable=row.claimable,
                )
            )
            results.append(RegisteredDevice(row.serial, factory_key, codes.display(code), claim_url(code)))
            if len(devices) == INSERT_BATCH or done == total:
                Device.objects.bulk_create(devices)
                devices = []
                if progress:
                    progress(done, total)
    except IntegrityError:
        # Another import registered one of these serials (or, once in 2^50, drew the same code) meanwhile.
        raise RegistrationRefused(
            ["A serial or code of this file was registered by someone else meanwhile; check the file and try again."]
        ) from None
    logger.info(
        "devices.registered",
        extra={"product": product.slug, "devices": total, "codes": len(new_codes), "batch_code": batch_code},
    )
    return results


def _factory_key_generate() -> str:
    """A key in FACTORY_KEY_CHARS: the result file then holds it unaltered (a leading "-" would be
    neutralised with an apostrophe, and the flashed key would not be the one handed out)."""
    while not FACTORY_KEY_CHARS.fullmatch(key := random_token()):
        pass
    return key


def registration_result_csv(results: list[RegisteredDevice], stream) -> None:
    """Writes the result file: the one place the generated factory keys and codes are handed out."""
    writer = spreadsheet.writer(stream, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    writer.writerows((r.serial, r.factory_key, r.claim_code, r.claim_url) for r in results)
