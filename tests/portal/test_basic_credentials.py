"""portal.http.basic_credentials: the one parser of HTTP Basic (device provisioning and the integrator
API), and how each side answers what it finds."""

import base64

import pytest
from django.test import RequestFactory

from portal.http import BadBasicCredentials, basic_credentials


def _request(header=None):
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    return RequestFactory().get("/", **extra)


def _basic(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return "Basic " + base64.b64encode(raw).decode()


def test_user_and_password_are_split_at_the_first_colon():
    assert basic_credentials(_request(_basic("SN-1:key:with:colons")), max_user=64, max_password=64) == (
        "SN-1",
        "key:with:colons",
    )


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Digest x"])
def test_no_basic_header_is_none(header):
    assert basic_credentials(_request(header), max_user=64, max_password=64) is None


def test_the_scheme_is_case_insensitive():
    assert basic_credentials(_request(_basic("a:b").replace("Basic", "bAsIc")), max_user=8, max_password=8) == (
        "a",
        "b",
    )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic not*base64", "base64"),
        (_basic(b"\xff\xfe:x"), "base64"),
        (_basic("no-colon"), "shape"),
        (_basic(":password"), "shape"),
        (_basic("user:"), "shape"),
        (_basic("u" * 9 + ":p"), "shape"),
        (_basic("u:" + "p" * 9), "shape"),
        (_basic("nul\x00name:p"), "name"),
    ],
)
def test_malformed_basic_says_why(header, reason):
    with pytest.raises(BadBasicCredentials) as raised:
        basic_credentials(_request(header), max_user=8, max_password=8)
    assert raised.value.reason == reason
