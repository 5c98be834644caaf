"""Fixtures of the integrator API tests; test modules load them with
`pytest_plugins = ["tests.apps.api_fixtures"]` and import helpers from api_support."""

import pytest

from ..factories import DeviceFactory
from .api_support import auth, link, make_application


@pytest.fixture
def application(owner):
    return make_application(owner)


@pytest.fixture
def other_application(other_owner):
    return make_application(other_owner)


@pytest.fixture
def linked_device(application, owner):
    device = DeviceFactory(owner=owner)
    link(application, device)
    return device


@pytest.fixture
def app_auth(application):
    return auth(application)
