import pytest

from devices import codes


def test_generated_code_is_ten_crockford_characters():
    code = codes.generate()
    assert len(code) == 10
    assert set(code) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_display_groups_by_five():
    assert codes.display("abcde12345") == "ABCDE-12345"


@pytest.mark.parametrize(
    "typed", ["ABCDE-12345", "abcde 12345", " a b c d e - 1 2 3 4 5 ", "abcde-1234s".replace("s", "5")]
)
def test_normalize_ignores_case_spaces_and_hyphens(typed):
    assert codes.normalize(typed) == "ABCDE12345"


def test_normalize_maps_confusable_letters():
    assert codes.normalize("oOiIlL") == "001111"
    assert codes.digest("0O1IL") == codes.digest("00111")
