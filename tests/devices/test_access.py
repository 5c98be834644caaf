"""devices.access with sharing: what each role may do, decided at query time (issue 18)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils import timezone

from devices import access
from devices.models import SupportGrant
from tests.factories import DeviceFactory, ShareFactory, SupportGrantFactory, UserFactory

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

SEE, OPERATE, MANAGE = access.SEE, access.OPERATE, access.MANAGE


def capabilities(user, device):
    return {c for c in access.CAPABILITIES if access.devices_visible_to(user, c).filter(pk=device.pk).exists()}


def test_the_owner_may_do_everything(owner, shared_device):
    assert capabilities(owner, shared_device) == {SEE, OPERATE, MANAGE}


def test_a_viewer_sees(viewer, shared_device):
    assert capabilities(viewer, shared_device) == {SEE}


def test_an_operator_sees_and_sends_commands(operator, shared_device):
    assert capabilities(operator, shared_device) == {SEE, OPERATE}


def test_a_stranger_may_do_nothing(stranger, shared_device):
    assert capabilities(stranger, shared_device) == set()


def test_anonymous_may_do_nothing(shared_device):
    assert capabilities(AnonymousUser(), shared_device) == set()
    assert access.role_of(AnonymousUser(), shared_device) is None


def test_support_sees_under_a_live_grant(support, grant):
    assert capabilities(support, grant.device) == {SEE}


def test_support_sends_commands_only_if_the_grant_allows(support, shared_device):
    SupportGrantFactory(device=shared_device, allow_commands=True)
    assert capabilities(support, shared_device) == {SEE, OPERATE}


def test_support_without_a_grant_sees_nothing(support, shared_device):
    assert capabilities(support, shared_device) == set()


def test_an_expired_grant_gives_nothing_before_the_beat_task_ends_it(support, grant):
    SupportGrant.objects.filter(pk=grant.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    assert capabilities(support, grant.device) == set()
    assert SupportGrant.objects.get(pk=grant.pk).ended_at is None  # nothing wrote the end yet


def test_an_ended_grant_gives_nothing(support, grant):
    SupportGrant.objects.filter(pk=grant.pk).update(ended_at=timezone.now())
    assert capabilities(support, grant.device) == set()


def test_a_grant_needs_the_support_permission(staff_without_support, grant):
    assert capabilities(staff_without_support, grant.device) == set()


def test_the_permission_alone_is_not_enough_without_staff_status(grant):
    from tests.sharing_fixtures import support_permission

    user = UserFactory(is_staff=False)
    user.user_permissions.add(support_permission())
    assert capabilities(user, grant.device) == set()


def test_the_list_has_no_duplicates_with_many_shares_and_a_grant(owner, support):
    device = DeviceFactory(owner=owner)
    for _ in range(5):
        ShareFactory(device=device)
    SupportGrantFactory(device=device)
    ShareFactory(device=device, user=support)
    assert list(access.devices_visible_to(support, SEE)) == [device]
    assert access.devices_visible_to(owner, SEE).count() == 1


def test_the_personal_list_leaves_support_grants_out(support, grant):
    assert not access.devices_visible_to(support, SEE, include_support=False).exists()
    assert list(access.devices_under_support(support)) == [grant.device]
    assert not access.devices_under_support(support, OPERATE).exists()


def test_devices_under_support_is_empty_for_anyone_else(owner, viewer, grant):
    assert not access.devices_under_support(owner).exists()
    assert not access.devices_under_support(viewer).exists()


@pytest.mark.parametrize(
    "who, role",
    [("owner", "owner"), ("viewer", "viewer"), ("operator", "operator"), ("support", "support"), ("stranger", None)],
)
def test_role_of_says_in_which_role(request, grant, who, role):
    user = request.getfixturevalue(who)
    assert access.role_of(user, grant.device) == role
    rows = access.devices_with_roles(user).filter(pk=grant.device.pk).values_list("access_role", flat=True)
    assert list(rows) == ([role] if role else [])


def test_device_for_is_404_for_who_cannot_see(stranger, shared_device):
    with pytest.raises(Http404):
        access.device_for(stranger, shared_device.pk, SEE)
    with pytest.raises(Http404):
        access.device_for(stranger, shared_device.pk, MANAGE)


def test_device_for_is_403_with_a_message_for_who_sees_but_may_not(viewer, shared_device):
    assert access.device_for(viewer, shared_device.pk, SEE) == shared_device
    with pytest.raises(access.CapabilityDenied) as caught:
        access.device_for(viewer, shared_device.pk, MANAGE)
    assert caught.value.message.startswith("Only the owner of this device can")
    with pytest.raises(access.CapabilityDenied):
        access.device_for(viewer, shared_device.pk, OPERATE)


def test_device_for_lets_an_operator_operate_but_not_manage(operator, shared_device):
    assert access.device_for(operator, shared_device.pk, OPERATE).access_role == "operator"
    with pytest.raises(access.CapabilityDenied):
        access.device_for(operator, shared_device.pk, MANAGE)


def test_device_for_support_follows_the_grant(support, shared_device):
    SupportGrantFactory(device=shared_device, allow_commands=True)
    assert access.device_for(support, shared_device.pk, OPERATE) == shared_device
    with pytest.raises(access.CapabilityDenied):
        access.device_for(support, shared_device.pk, MANAGE)


def test_device_for_is_one_query(viewer, shared_device, django_assert_num_queries):
    with django_assert_num_queries(1):
        access.device_for(viewer, shared_device.pk, SEE)


def test_may_for_each_role(owner, viewer, operator, shared_device):
    assert access.may(owner, shared_device, MANAGE)
    assert access.may(viewer, shared_device, SEE) and not access.may(viewer, shared_device, OPERATE)
    assert access.may(operator, shared_device, OPERATE) and not access.may(operator, shared_device, MANAGE)


def test_recipients_are_the_owner_and_the_people_it_is_shared_with(owner, viewer, operator, shared_device):
    unowned = DeviceFactory()
    recipients = access.recipients_of([shared_device, unowned])
    owner_id, shared = recipients[shared_device.pk]
    assert owner_id == owner.pk and sorted(shared) == sorted([viewer.pk, operator.pk])
    assert unowned.pk not in recipients


def test_a_role_found_for_one_person_is_not_taken_for_another(operator, viewer, shared_device):
    # A device in hand from device_for(operator) carries the operator's role; asked about the viewer,
    # the access module asks again rather than answering with the operator's.
    held = access.device_for(operator, shared_device.pk, access.OPERATE)
    assert access.role_of(operator, held) == access.OPERATOR
    assert access.role_of(viewer, held) == access.VIEWER
    assert access.may(operator, held, access.OPERATE)
    assert not access.may(viewer, held, access.OPERATE)
