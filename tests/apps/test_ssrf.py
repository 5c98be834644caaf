"""The SSRF guard: refused when saved, refused at send time, pinned to the address it checked."""

import socket

import pytest

from apps import ssrf
from apps.models import Delivery, DeliveryStatus
from apps.services import applications, fanout, sending
from devices.outbox import event_record, relay_pending
from portal.errors import ValidationError

from ..factories import ApplicationFactory, DeviceFactory


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/hook",
        "https://2130706433/hook",
        "https://0x7f.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.10/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://240.0.0.1/hook",
        "https://[fe80::1]/hook",
        "https://[fc00::1]/hook",
        "https://[::]/hook",
        "https://[2002:7f00:1::1]/hook",
        "https://[2002:a00:8::1]/hook",
    ],
)
def test_private_and_loopback_targets_are_refused(url):
    with pytest.raises(ssrf.UnsafeTarget):
        ssrf.check_url(url)


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/hook", "ftp://example.com/x", "https:///nohost", "https://user:pw@93.184.215.14/"]
)
def test_only_plain_https_urls_are_accepted(url):
    with pytest.raises(ssrf.UnsafeTarget):
        ssrf.check_url(url)


def test_a_public_address_is_accepted():
    assert ssrf.check_url("https://93.184.215.14/hook") == "93.184.215.14"


def test_a_name_with_one_private_address_among_public_ones_is_refused(monkeypatch):
    def getaddrinfo(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(ssrf.UnsafeTarget):
        ssrf.check_url("https://rebind.example.test/hook")


def test_an_unknown_name_is_refused():
    with pytest.raises(ssrf.UnsafeTarget, match="cannot be resolved"):
        ssrf.check_url("https://no-such-host.invalid/hook")


def test_the_development_setting_lets_loopback_and_http_through(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert ssrf.check_url("http://127.0.0.1:8080/hook") == "127.0.0.1"


@pytest.mark.parametrize("url", ["https://127.1/hook", "https://localhost/hook", "https://[::ffff:127.0.0.1]/"])
def test_saving_a_refused_callback_is_a_form_error(owner, url):
    with pytest.raises(ValidationError) as caught:
        applications.application_create(owner=owner, name="Internal", callback_url=url)
    assert "callback_url" in caught.value.fields


def test_the_guard_runs_again_at_send_time(owner, receiver):
    # Saved while allowed (or before the name moved to a private address): refused now.
    application = ApplicationFactory(owner=owner, callback_url=f"https://127.0.0.1:{receiver.port}/hook")
    device = DeviceFactory(owner=owner)
    application.links.create(device=device)
    event_record(device=device, type="device.data", data={"t": 1})
    relay_pending()
    delivery = Delivery.objects.get()
    sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert receiver.log == []
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert "not allowed" in delivery.last_error


def test_a_name_resolving_to_loopback_is_refused_at_send_time(owner, receiver):
    application = ApplicationFactory(owner=owner, callback_url=f"https://localhost:{receiver.port}/hook")
    delivery = fanout.delivery_send_test(application=application)
    sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert receiver.log == []
    assert "loopback" in delivery.last_error


def test_a_redirect_to_loopback_is_not_followed(hooked_app, receiver):
    inner = receiver.url_for("/internal")
    receiver.expect_request("/hook").respond_with_data("", status=302, headers={"Location": inner})
    receiver.expect_request("/internal").respond_with_data("secret metadata")
    delivery = fanout.delivery_send_test(application=hooked_app)
    sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert [request.path for request, _ in receiver.log] == ["/hook"]
    assert delivery.last_status_code == 302 and delivery.status == DeliveryStatus.PENDING
    assert "not followed" in delivery.last_error


def test_the_connection_goes_to_the_address_resolved_once(hooked_app, receiver, monkeypatch):
    """No second lookup between the check and the connection: a rebinding name gets no say."""
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host == "hooks.example.test":
            # The first answer is the receiver; any later one would point elsewhere.
            address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    hooked_app.callback_url = f"http://hooks.example.test:{receiver.port}/hook"
    hooked_app.save()
    receiver.expect_request("/hook").respond_with_data("ok")
    delivery = fanout.delivery_send_test(application=hooked_app)
    sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    # The name once; then only the pinned address itself, which the socket layer parses, not resolves.
    assert lookups == ["hooks.example.test", "127.0.0.1"]
    request, _ = receiver.log[0]
    assert request.headers["Host"] == f"hooks.example.test:{receiver.port}"


def test_https_keeps_the_name_for_sni_and_the_certificate_check():
    adapter = ssrf.PinnedAddressAdapter()
    request = ssrf.requests.Request("POST", "https://hooks.example.com/x").prepare()
    request.pinned_address = "93.184.215.14"
    host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(request, True)
    assert host_params["host"] == "93.184.215.14"
    assert pool_kwargs["server_hostname"] == "hooks.example.com"
    assert pool_kwargs["assert_hostname"] == "hooks.example.com"


def test_proxy_environment_variables_are_ignored(hooked_app, receiver, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: a proxy that is not there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    receiver.expect_request("/hook").respond_with_data("ok")
    delivery = fanout.delivery_send_test(application=hooked_app)
    sending.delivery_send(delivery_id=delivery.pk, lease=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
