"""Demo data for `make run`: a product, five devices with known keys and codes, a demo owner who
already owns one device, and an admin. Idempotent: a re-run keeps everything and prints the same.

The simulated devices read their factory keys from VAR_DIR/demo-devices.json (a list of
{serial, factory_key, claim_code}); the demo passwords are kept in VAR_DIR/demo-logins.json.
Both live under var/, which git ignores.
"""

import json
import os
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from devices import codes
from devices.labels import claim_code_text, claim_url
from devices.models import ClaimCode, Device, Product
from devices.services import FACTORY_KEY_PURPOSE, factory_key_digest, pin_digest
from portal.secrets import digests_match, encrypt, random_token

PRODUCT = {"slug": "thermo", "name": "Thermo Sensor", "description": "Temperature and humidity sensor (demo)."}
# The demo's unclaimed devices poll at most every 10 s (a real product's cap is minutes), so someone
# who claims the printed code sees the device come online within seconds.
DEMO_POLL_CAP = 10
DEMO_CHECKIN_INTERVAL = 5
OWNER_EMAIL = "owner@example.com"
ADMIN_EMAIL = "admin@example.com"
# Devices sharing a tuple share one claim code (an OEM batch code).
CODE_GROUPS = [("DEMO-0001",), ("DEMO-0002", "DEMO-0003"), ("DEMO-0004",), ("DEMO-0005",)]
OWNED_SERIAL = "DEMO-0001"
PIN_SERIAL = "DEMO-0004"
DEMO_PIN = "2468"
# Which code to suggest first: a single device's, then the batch.
SUGGESTED_ORDER = [("DEMO-0005",), ("DEMO-0002", "DEMO-0003"), ("DEMO-0004",)]


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def _write_private(path: Path, data) -> None:
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
        devices_path = Path(settings.VAR_DIR) / "demo-devices.json"
        logins_path = Path(settings.VAR_DIR) / "demo-logins.json"
        known_keys = {
            entry["serial"]: entry.get("factory_key", "")
            for entry in _read_json(devices_path, [])
            if isinstance(entry, dict) and entry.get("serial")
        }
        passwords = _read_json(logins_path, {})
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

        _write_private(devices_path, entries)
        _write_private(logins_path, passwords)
        self._print(passwords, code_of, devices_path)

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

    def _print(self, passwords, code_of, devices_path):
        base = settings.PORTAL_BASE_URL
        out = self.stdout.write
        out(self.style.SUCCESS("Demo data is ready."))
        out(f"  Portal:        {base}/")
        out(f"  Admin:         {base}/admin/")
        out(f"  Demo owner:    {OWNER_EMAIL} / {passwords[OWNER_EMAIL]}  (owns {OWNED_SERIAL})")
        out(f"  Admin login:   {ADMIN_EMAIL} / {passwords[ADMIN_EMAIL]}")
        suggestion = next(
            (
                group
                for group in SUGGESTED_ORDER
                if not Device.objects.filter(serial__in=group, owner__isnull=False).exists()
            ),
            None,
        )
        if suggestion:
            code = code_of[suggestion[0]]
            out(f"  Claim code to try: {codes.display(code)}  ({', '.join(suggestion)})")
            out(f"  Or open its QR link: {claim_url(code)}")
        else:
            out("  Every demo code is claimed; register more devices with `manage.py register_devices`.")
        if Device.objects.filter(serial=PIN_SERIAL, owner__isnull=True, claimable=True).exists():
            out(f"  Serial + PIN claiming: {PIN_SERIAL} with PIN {DEMO_PIN}")
        out(f"  Simulated devices' factory keys: {devices_path}")
