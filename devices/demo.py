"""What the demo (`make run`) tells a newcomer: the logins, a claim code to try, the PIN device.
`seed_demo` prints it when it makes the data; `rundemo` prints it again once the portal answers,
from the files seed_demo keeps under VAR_DIR."""

import json
from pathlib import Path

from django.conf import settings

from . import codes
from .labels import claim_url
from .models import Device

OWNER_EMAIL = "owner@example.com"
ADMIN_EMAIL = "admin@example.com"
OWNED_SERIAL = "DEMO-0001"
PIN_SERIAL = "DEMO-0004"
DEMO_PIN = "2468"
# What the demo product's values mean (the simulated devices send these keys, firmware/agent.py).
DEMO_FIELDS = [
    {"key": "temperature", "label": "Temperature", "unit": "°C", "decimals": 1, "primary": True,
     "expected_min": 5, "expected_max": 35, "order": 10},
    {"key": "humidity", "label": "Humidity", "unit": "%", "decimals": 0, "primary": True,
     "expected_min": 0, "expected_max": 100, "order": 20},
    {"key": "uptime", "label": "Uptime", "unit": "s", "decimals": 0, "order": 30},
]  # fmt: skip
# Which code to suggest first: a single device's, then the batch.
SUGGESTED_ORDER = [("DEMO-0005",), ("DEMO-0002", "DEMO-0003"), ("DEMO-0004",)]


def devices_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-devices.json"


def logins_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-logins.json"


def read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def summary(base: str, passwords: dict, code_of: dict) -> list[str]:
    """The lines to print: `passwords` by email, `code_of` each demo serial's claim code."""
    lines = [
        f"  Portal:        {base}/",
        f"  Admin:         {base}/admin/",
        f"  Demo owner:    {OWNER_EMAIL} / {passwords.get(OWNER_EMAIL, '?')}  (owns {OWNED_SERIAL})",
        f"  Admin login:   {ADMIN_EMAIL} / {passwords.get(ADMIN_EMAIL, '?')}",
    ]
    suggestion = next(
        (
            group
            for group in SUGGESTED_ORDER
            if group[0] in code_of and not Device.objects.filter(serial__in=group, owner__isnull=False).exists()
        ),
        None,
    )
    if suggestion:
        code = code_of[suggestion[0]]
        lines.append(f"  Claim code to try: {codes.display(code)}  ({', '.join(suggestion)})")
        lines.append(f"  Or open its QR link: {claim_url(code)}")
    else:
        lines.append("  Every demo code is claimed; register more devices with `manage.py register_devices`.")
    if Device.objects.filter(serial=PIN_SERIAL, owner__isnull=True, claimable=True).exists():
        lines.append(f"  Serial + PIN claiming: {PIN_SERIAL} with PIN {DEMO_PIN}")
    return lines


def saved_summary(base: str) -> list[str] | None:
    """`summary` from the files seed_demo wrote, or None before it has run."""
    passwords = read_json(logins_path(), None)
    entries = read_json(devices_path(), None)
    if not isinstance(passwords, dict) or not isinstance(entries, list):
        return None
    code_of = {
        entry["serial"]: entry["claim_code"]
        for entry in entries
        if isinstance(entry, dict) and entry.get("serial") and entry.get("claim_code")
    }
    return summary(base, passwords, code_of)
