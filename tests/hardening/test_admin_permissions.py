"""Every admin action and every custom admin page × a staff user holding only the model's view permission.

Generated from the admin registry, so a new ModelAdmin, action or page cannot be forgotten: an action
without `permissions=` (Django then offers it to anyone who may see the list) fails here.
"""

from http import HTTPStatus

import pytest
from allauth.account.models import EmailAddress
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core import serializers
from django.urls import URLPattern, reverse
from django.utils import timezone

from apps.models import Connection, ConnectLink, Delivery
from claiming.models import OwnershipEvent, OwnershipEventKind

from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory, UserFactory

REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
STANDARD_URLS = {"changelist", "add", "history", "delete", "change"}


def _actions(model_admin):
    return [(name, function) for function, name, _ in model_admin._get_base_actions()]


ACTIONS = [(model._meta.label, name) for model, model_admin in REGISTRY for name, _ in _actions(model_admin)]


def _custom_urls(model_admin):
    opts = model_admin.model._meta
    standard = {f"{opts.app_label}_{opts.model_name}_{suffix}" for suffix in STANDARD_URLS}
    return [p for p in model_admin.get_urls() if isinstance(p, URLPattern) and p.name and p.name not in standard]


PAGES = [(model._meta.label, p.name) for model, model_admin in REGISTRY for p in _custom_urls(model_admin)]


def test_every_action_names_a_permission_beyond_view():
    loose = [
        (model._meta.label, name)
        for model, model_admin in REGISTRY
        for name, function in _actions(model_admin)
        if not set(getattr(function, "allowed_permissions", ())) - {"view"}
    ]
    assert loose == [], "give these admin actions permissions=[...] (change, delete or a specific one)"


@pytest.fixture
def world(owner):
    device = DeviceFactory(owner=owner, claim_code=ClaimCodeFactory())
    application = ApplicationFactory(owner=owner, paused_at=timezone.now(), pause_reason="failing")
    EmailAddress.objects.create(user=owner, email="alice.other@example.com", verified=False)
    Group.objects.create(name="support")
    ConnectLink.objects.create(application=application, token_digest="x" * 64, expires_at=timezone.now())
    Connection.objects.create(application=application, user=owner)
    Delivery.objects.create(application=application, event_type="ping")
    OwnershipEvent.objects.create(device=device, kind=OwnershipEventKind.CLAIMED, owner=owner)
    return {"device": device, "application": application}


def _snapshot():
    return {model._meta.label: serializers.serialize("json", model._default_manager.all()) for model, _ in REGISTRY}


def _viewer(client, model):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(
        content_type__app_label=model._meta.app_label, codename=f"view_{model._meta.model_name}"
    ))
    client.force_login(user)
    return user


def _registered(label):
    return next((model, model_admin) for model, model_admin in REGISTRY if model._meta.label == label)


@pytest.mark.parametrize(("label", "action"), ACTIONS)
def test_a_view_only_admin_cannot_run_an_action(client, world, label, action):
    model, _ = _registered(label)
    _viewer(client, model)
    changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    pks = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)]
    assert pks, f"the world has no {label} to select"
    before = _snapshot()
    for extra in ({}, {"apply": "1", "email": "mallory@example.com"}):
        response = client.post(changelist, {"action": action, "_selected_action": pks, "index": 0, **extra})
        # Refused: 403, the changelist's "No action selected." with a redirect back to the list, or
        # (no action offered at all) the plain list again.
        if response.status_code == HTTPStatus.FOUND:
            assert response["Location"].startswith(changelist)
        elif response.status_code == HTTPStatus.OK:
            assert "admin/change_list.html" in [t.name for t in response.templates], response.content[:200]
        else:
            assert response.status_code == HTTPStatus.FORBIDDEN
    assert _snapshot() == before


def _page_kwargs(pattern, model, world):
    route = str(pattern.pattern)
    kwargs = {}
    if "<id>" in route:
        kwargs["id"] = model._default_manager.values_list("pk", flat=True)[0]
    if "<uuid:pk>" in route:
        kwargs["pk"] = world["device"].pk
    if "<str:token>" in route:
        kwargs["token"] = "not-a-real-token"
    return kwargs


@pytest.mark.parametrize(("label", "name"), PAGES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_view_only_admin_cannot_open_a_custom_page(client, world, label, name, method):
    model, model_admin = _registered(label)
    _viewer(client, model)
    pattern = next(p for p in _custom_urls(model_admin) if p.name == name)
    url = reverse(f"admin:{name}", kwargs=_page_kwargs(pattern, model, world))
    if name.endswith("_labels"):
        url += f"?ids={world['device'].pk}"
    before = _snapshot()
    response = getattr(client, method)(url)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert _snapshot() == before
