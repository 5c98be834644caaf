"""Personas of the sharing tests (issue 18); test modules load them with
`pytest_plugins = ["tests.sharing_fixtures"]`.

`shared_device` is the owner's device shared with `viewer` and `operator`; `support` is a staff
member with `devices.support_device` (not a superuser, so the permission is what counts);
`grant` is a live support grant on `shared_device`."""

import pytest
from django.contrib.auth.models import Permission

from .factories import DeviceFactory, ShareFactory, SupportGrantFactory, UserFactory


def support_permission():
    return Permission.objects.get(content_type__app_label="devices", codename="support_device")


@pytest.fixture
def viewer(db):
    return UserFactory(email="vera@example.com", username="vera")


@pytest.fixture
def operator(db):
    return UserFactory(email="otto@example.com", username="otto")


@pytest.fixture
def stranger(db):
    return UserFactory(email="stan@example.com", username="stan")


@pytest.fixture
def support(db):
    user = UserFactory(email="help@maker.example", username="help", is_staff=True)
    user.user_permissions.add(support_permission())
    return user


@pytest.fixture
def staff_without_support(db):
    return UserFactory(email="desk@maker.example", username="desk", is_staff=True)


@pytest.fixture
def shared_device(owner, viewer, operator):
    device = DeviceFactory(owner=owner, values={"temperature": 21.5})
    ShareFactory(device=device, user=viewer, role="viewer", invited_by=owner)
    ShareFactory(device=device, user=operator, role="operator", invited_by=owner)
    return device


@pytest.fixture
def grant(shared_device, owner):
    return SupportGrantFactory(device=shared_device, granted_by=owner)
