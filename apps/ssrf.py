"""The guard between a webhook and the portal's own network (SSRF).

A callback URL is checked when it is saved and again at every send: https only, the host is
resolved once, every address it resolves to must be public, and the connection then goes to
that same address (no second lookup a DNS rebinding could change), with SNI, certificate check
and Host header still naming the host. Proxy environment variables are ignored.
`WEBHOOK_ALLOW_PRIVATE_TARGETS` (development and tests only) lets plain http and private
addresses through; the address is still pinned.
"""

import ipaddress
import socket
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from portal.errors import ValidationError

# Not globally routable, yet not flagged by every Python version's is_private.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeTarget(ValidationError):
    code = "callback_refused"
    message = "This callback URL is not allowed."


def _allow_private() -> bool:
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False))


def address_refusal(address: str) -> str | None:
    """Why `address` may not be called, or None when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    if ip.version == 6 and ip.sixtofour is not None and address_refusal(str(ip.sixtofour)):
        # A 6to4 relay would carry the request to the IPv4 address inside.
        return "a 6to4 address of a non-public IPv4 address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 4 and ip in _CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def url_parts(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a callback URL, or UnsafeTarget when it cannot be one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeTarget("Enter a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeTarget("Enter a full URL starting with https://.")
    if scheme != "https" and not _allow_private():
        raise UnsafeTarget("The callback URL must start with https://.")
    if parts.username or parts.password:
        raise UnsafeTarget("Put credentials in the Authorization settings, not in the URL.")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def resolve(host: str, port: int) -> str:
    """Resolves `host` once and returns the address to connect to; UnsafeTarget when any is refused.

    Every address is checked, not only the first: a name answering with one public and one private
    address could otherwise be steered to the private one.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeTarget("The callback host name cannot be resolved.") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise UnsafeTarget("The callback host name cannot be resolved.")
    if not _allow_private():
        for address in addresses:
            refusal = address_refusal(address)
            if refusal:
                raise UnsafeTarget(f"The callback host resolves to {refusal}, which is not allowed.")
    return addresses[0]


def check_url(url: str) -> str:
    """The address `url` would be sent to; UnsafeTarget (a ValidationError) when it is refused."""
    _, host, port = url_parts(url)
    return resolve(host, port)


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to the address the guard resolved, while TLS and Host still name the host."""

    def send(self, request, **kwargs):
        scheme, host, port = url_parts(request.url)
        request.pinned_address = resolve(host, port)
        default_port = 443 if scheme == "https" else 80
        request.headers["Host"] = _host_header(host, port, default_port)
        return super().send(request, **kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        address = getattr(request, "pinned_address", None)
        if address is None:  # only reachable when someone bypasses send(); refuse rather than resolve
            raise UnsafeTarget()
        hostname = host_params["host"]
        host_params["host"] = address
        if host_params["scheme"] == "https":
            # The pool is keyed by address AND name, so two names on one address never share TLS.
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        return host_params, pool_kwargs


def _host_header(host: str, port: int, default_port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default_port else f"{shown}:{port}"


def session_create(*, pool_size=32) -> requests.Session:
    """A session that only reaches guarded addresses, ignores proxies and keeps no cookies."""
    session = requests.Session()
    session.trust_env = False  # no HTTP(S)_PROXY / NO_PROXY / .netrc from the environment
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = PinnedAddressAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
