"""Demo data for `make run`: a product, five devices with known keys and codes, a demo owner who
already owns one device, and an admin. Idempotent: a re-run keeps everything and prints the same.

The simulated devices read their factory keys from VAR_DIR/demo-devices.json (a list of
{serial, factory_key, claim_code}); the demo passwords are kept in VAR_DIR/demo-logins.json.
Both live under var/, which git ignores.
"""

import json
import os

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from devices import codes
from devices.demo import (
    ADMIN_EMAIL,
    DEMO_FIELDS,
    DEMO_PIN,
    OWNED_SERIAL,
    OWNER_EMAIL,
    PIN_SERIAL,
    devices_path,
    logins_path,
    read_json,
    summary,
)
from devices.labels import claim_code_text
from devices.models import ClaimCode, Device, Product, ProductField
from devices.services import FACTORY_KEY_PURPOSE, factory_key_digest, pin_digest
from portal.secrets import digests_match, encrypt, random_token

PRODUCT = {"slug": "thermo", "name": "Thermo Sensor", "description": "Temperature and humidity sensor (demo)."}
# The demo's unclaimed devices poll at most every 10 s (a real product's cap is minutes), so someone
# who claims the printed code sees the device come online within seconds.
DEMO_POLL_CAP = 10
DEMO_CHECKIN_INTERVAL = 5
# Devices sharing a tuple share one claim code (an OEM batch code).
CODE_GROUPS = [("DEMO-0001",), ("DEMO-0002", "DEMO-0003"), ("DEMO-0004",), ("DEMO-0005",)]


def _write_private(path, data) -> None:
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")
    os.replace(partial, path)


class Command(BaseCommand):
    help = "Creates (or keeps) the demo product, devices, owner and admin, and prints how to try them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off (it creates accounts with known passwords)."
        )

    def handle(self, *args, force, **options):
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo makes accounts whose passwords it prints; it runs with DEBUG on, or --force.")
        known_keys = {
            entry["serial"]: entry.get("factory_key", "")
            for entry in read_json(devices_path(), [])
            if isinstance(entry, dict) and entry.get("serial")
        }
        passwords = read_json(logins_path(), {})
        if not isinstance(passwords, dict):
            passwords = {}

        with transaction.atomic():
            owner = self._user(OWNER_EMAIL, "owner", passwords, superuser=False)
            self._user(ADMIN_EMAIL, "admin", passwords, superuser=True)
            product, _ = Product.objects.get_or_create(
                slug=PRODUCT["slug"],
                defaults={
                    "name": PRODUCT["name"],
                    "description": PRODUCT["description"],
                    "poll_cap": DEMO_POLL_CAP,
                    "checkin_interval": DEMO_CHECKIN_INTERVAL,
                },
            )
            # As the product: made once, an admin's later edits kept.
            for field in DEMO_FIELDS:
                ProductField.objects.get_or_create(product=product, key=field["key"], defaults=field)
            entries = []
            code_of = {}
            for group in CODE_GROUPS:
                code = self._group_code(group)
                for serial in group:
                    key = self._device(
                        serial, product=product, code=code, known_key=known_keys.get(serial), owner=owner
                    )
                    entries.append({"serial": serial, "factory_key": key, "claim_code": codes.display(code)})
                    code_of[serial] = code

        _write_private(devices_path(), entries)
        _write_private(logins_path(), passwords)
        self.stdout.write(self.style.SUCCESS("Demo data is ready."))
        for line in summary(settings.PORTAL_BASE_URL, passwords, code_of):
            self.stdout.write(line)
        self.stdout.write(f"  Simulated devices' factory keys: {devices_path()}")

    def _user(self, email, username, passwords, *, superuser):
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User(email=email, username=username, is_staff=superuser, is_superuser=superuser)
        password = passwords.get(email)
        if not password or not user.check_password(password):
            # New, or its password was lost with var/: a demo account gets a fresh one.
            password = passwords[email] = random_token(9)
            user.set_password(password)
            user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        return user

    def _group_code(self, group) -> str:
        """The code these devices already share, or a new one."""
        existing = (
            Device.objects.filter(serial__in=group, claim_code__isnull=False).select_related("claim_code").first()
        )
        if existing is not None:
            return claim_code_text(existing.claim_code)
        code = codes.generate()
        ClaimCode.objects.create(digest=codes.digest(code), code_encrypted=encrypt(code))
        return code

    def _device(self, serial, *, product, code, known_key, owner) -> str:
        """Creates the device, or keeps it; returns its factory key (a new one if the old is unknown)."""
        claim_code = ClaimCode.objects.get(digest=codes.digest(code))
        device = Device.objects.filter(serial=serial).first()
        if device is None:
            key = known_key or random_token()
            device = Device(
                serial=serial,
                product=product,
                factory_key_digest=factory_key_digest(key),
                claim_code=claim_code,
                claimable=serial == PIN_SERIAL,
                pin_digest=pin_digest(DEMO_PIN) if serial == PIN_SERIAL else "",
            )
            if serial == OWNED_SERIAL:
                device.owner, device.owned_since = owner, timezone.now()
            device.save()
            return key
        update = {}
        key = known_key
        if not key or not digests_match(key, device.factory_key_digest, purpose=FACTORY_KEY_PURPOSE):
            key = random_token()
            update["factory_key_digest"] = factory_key_digest(key)
        if device.claim_code_id is None:
            update["claim_code"] = claim_code
        if update:
            Device.objects.filter(pk=device.pk).update(**update)
        return key
