"""QR labels: the claim URL a label's QR encodes, the label as PNG or SVG, and the data of a
printable sheet.

A label's QR encodes the short permanent link `PORTAL_BASE_URL/c/<normalised code>`; the code is
printed under it in human-readable form (XXXXX-XXXXX) for people who type it instead.
"""

import io
from dataclasses import dataclass
from functools import cache
from xml.sax.saxutils import escape

import qrcode
from django.conf import settings
from django.utils.safestring import mark_safe
from PIL import Image, ImageDraw, ImageFont

from portal.secrets import decrypt

from . import codes
from .models import ClaimCode, Device

QUIET_ZONE = 4  # modules of white around the symbol, as the QR standard asks
PNG_MODULE_PIXELS = 10
SVG_MODULE_PIXELS = 8
LABELS_PER_PAGE = 21  # an A4 sheet of 3 × 7 labels (70 × 42.4 mm)


def claim_url(code: str) -> str:
    return f"{settings.PORTAL_BASE_URL}/c/{codes.normalize(code)}"


def _matrix(url: str) -> list[list[bool]]:
    # Level M survives a scuffed or partly covered label and keeps the symbol small.
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=QUIET_ZONE)
    qr.add_data(url)
    qr.make(fit=True)
    return qr.get_matrix()


def _svg_path(matrix: list[list[bool]]) -> str:
    """One path for every dark module; a horizontal run of them is a single rectangle."""
    parts = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    return "".join(parts)


@cache
def _font(size: int):
    # DejaVu Sans Mono tells 0 from O where it is installed; Pillow's own font everywhere else.
    try:
        return ImageFont.truetype("DejaVuSansMono-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def label_png(code: str, *, module_pixels: int = PNG_MODULE_PIXELS) -> bytes:
    """A PNG label: the QR of the claim URL, the code in words under it."""
    matrix = _matrix(claim_url(code))
    size = len(matrix)
    symbol = Image.new("1", (size, size), 1)
    symbol.putdata([0 if dark else 1 for row in matrix for dark in row])
    symbol = symbol.resize((size * module_pixels, size * module_pixels), Image.Resampling.NEAREST)

    text_height = module_pixels * 5
    label = Image.new("L", (symbol.width, symbol.height + text_height), 255)
    label.paste(symbol, (0, 0))
    draw = ImageDraw.Draw(label)
    draw.text(
        (label.width // 2, symbol.height - module_pixels),
        codes.display(code),
        fill=0,
        font=_font(module_pixels * 3),
        anchor="mt",
    )
    buffer = io.BytesIO()
    label.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def label_svg(code: str) -> str:
    """An SVG label (a standalone file): the QR as one path, the code as a text element under it."""
    matrix = _matrix(claim_url(code))
    size = len(matrix)
    height = size + 5
    shown = escape(codes.display(code))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {height}" '
        f'width="{size * SVG_MODULE_PIXELS}" height="{height * SVG_MODULE_PIXELS}" role="img">\n'
        f"<title>Claim code {shown}</title>\n"
        f'<rect width="{size}" height="{height}" fill="#fff"/>\n'
        f'<path d="{_svg_path(matrix)}" fill="#000" shape-rendering="crispEdges"/>\n'
        f'<text x="{size / 2:g}" y="{size + 2}" text-anchor="middle" font-size="3" font-weight="bold" '
        f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" fill="#000">{shown}</text>\n'
        "</svg>\n"
    )


def qr_svg_inline(url: str) -> str:
    """The bare symbol as inline SVG markup for an HTML page (presentation attributes only, no
    style attributes, so the page's Content-Security-Policy allows it)."""
    matrix = _matrix(url)
    size = len(matrix)
    return mark_safe(  # noqa: S308 -- built here from a path of digits and letters; no outside input
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" class="qr" aria-hidden="true">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path d="{_svg_path(matrix)}" fill="#000" shape-rendering="crispEdges"/></svg>'
    )


@dataclass(frozen=True)
class Label:
    serial: str
    product: str
    code: str  # human-readable
    url: str
    qr_svg: str

    @property
    def url_host(self) -> str:
        """The URL without its scheme, up to the code: printed small under the code."""
        return self.url.split("://", 1)[-1].rsplit("/c/", 1)[0]


def claim_code_text(claim_code: ClaimCode) -> str:
    """A code in plain text: it is kept encrypted only so that labels can be reprinted."""
    return decrypt(claim_code.code_encrypted)


def device_claim_code(device: Device) -> str | None:
    return claim_code_text(device.claim_code) if device.claim_code_id else None


def labels_for_devices(devices) -> tuple[list[Label], list[Device]]:
    """Label data for each device that has a claim code; the devices without one come second.

    Pass devices with `select_related("product", "claim_code")`: this makes no query. A batch
    code is decrypted and drawn once for all of its devices.
    """
    labels, skipped = [], []
    drawn: dict[int, tuple[str, str, str]] = {}
    for device in devices:
        if device.claim_code_id is None:
            skipped.append(device)
            continue
        if device.claim_code_id not in drawn:
            code = device_claim_code(device)
            url = claim_url(code)
            drawn[device.claim_code_id] = (codes.display(code), url, qr_svg_inline(url))
        shown, url, svg = drawn[device.claim_code_id]
        labels.append(Label(serial=device.serial, product=device.product.name, code=shown, url=url, qr_svg=svg))
    return labels, skipped


def label_pages(labels: list[Label]) -> list[list[Label]]:
    return [labels[i : i + LABELS_PER_PAGE] for i in range(0, len(labels), LABELS_PER_PAGE)]
