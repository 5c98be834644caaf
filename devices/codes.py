"""Claim codes: generation, normalisation and lookup digests.

A generated code is 10 Crockford base32 characters (50 bits), printed XXXXX-XXXXX. Input is
normalised before lookup: case, spaces and hyphens ignored, O→0, I/L→1. Codes imported from
existing labels may have another shape; they are normalised the same way.
"""

import re

from portal.secrets import keyed_digest, random_crockford

CODE_LENGTH = 10
CLAIM_CODE_PURPOSE = "claim-code"
_IGNORED = re.compile(r"[\s\-_]+")
_TRANSLATE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def normalize(code: str) -> str:
    return _IGNORED.sub("", code or "").upper().translate(_TRANSLATE)


def generate() -> str:
    return random_crockford(CODE_LENGTH)


def display(code: str) -> str:
    """XXXXX-XXXXX for a 10-character code; other shapes are shown in groups of five."""
    normal = normalize(code)
    return "-".join(normal[i : i + 5] for i in range(0, len(normal), 5))


def digest(code: str) -> str:
    return keyed_digest(normalize(code), purpose=CLAIM_CODE_PURPOSE)
