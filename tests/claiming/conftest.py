import pytest
import time_machine
from django.utils import timezone


@pytest.fixture
def time_machine_at_now():
    """A clock that starts now and moves only when the test shifts it."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Personas are created in nearly every test; the default hasher would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
