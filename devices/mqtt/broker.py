"""The Mosquitto 2.0 configuration the portal writes (`manage.py mqtt_broker_config`), and keeps fresh.

Files in one directory (settings.MQTT_DIR), shared by the broker and the bridge:
- `mosquitto.conf`: a TLS listener for devices, and the bridge listener for the portal's own clients;
- `product-cas.pem`: every product CA's certificate, concatenated: a device's certificate must be
  signed by one of them (`require_certificate`), and its CN, the device's serial, is its username;
- `crl.pem`: every product CA's revocation list, concatenated. Mosquitto 2.0 takes one `crlfile`
  and loads it with OpenSSL's X509_load_crl_file, which adds every CRL of a PEM file to the store;
  with CRL checking on, each CA in the cafile needs its list there (an absent one refuses all its
  devices), so every product CA's list is written, empty or not (tests/devices/mqtt proves both);
- `acl`: a device publishes and subscribes on its own topics only (`%u`, its CN); the bridge's user
  on every device's topics;
- `passwd`: the bridge's credential (PBKDF2-SHA512, Mosquitto's `$7$` format);
- `broker-ca.pem` / `broker-ca.key` and `server.pem` / `server.key`: the portal's broker CA, made
  once and kept, and the TLS listener's certificate it signs for settings.MQTT_SERVER_NAMES.
  Devices verify the broker against `broker-ca.pem` (provisioning hands it over as `mqtt.ca`).

The revocation list is signed for a day (devices.ca.CRL_VALIDITY): the bridge writes the CAs and the
lists again when they change (a revocation, a new product CA) and every hour, and signals the broker
to read them (`trust_write`, `broker_reload`).
"""

import base64
import hashlib
import ipaddress
import logging
import os
import pwd
import secrets
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

from ..ca import BACKDATE, private_key_pem, product_ca_ensure, product_crl_cached, self_signed_ca
from ..models import Product
from . import topics

logger = logging.getLogger(__name__)

CONF, CAFILE, CRLFILE, ACLFILE, PASSWDFILE = "mosquitto.conf", "product-cas.pem", "crl.pem", "acl", "passwd"
# In the broker's own folder (data/, with its persistence): the directory itself stays the portal's,
# which writes crl.pem there again while the broker runs.
PIDFILE = "data/mosquitto.pid"
BROKER_CA, BROKER_CA_KEY, SERVER_CERT, SERVER_KEY = "broker-ca.pem", "broker-ca.key", "server.pem", "server.key"
SERVER_CERT_VALIDITY = timedelta(days=397)
# The server certificate is issued again when less than this is left, or when its names change.
SERVER_CERT_RENEW_BEFORE = timedelta(days=30)
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes for `$7$`
# The largest MQTT packet a client may send: a check-in body (the HTTP cap) and its topic and headers.
MAX_PACKET_BYTES = settings.DEVICE_CHECKIN_MAX_BYTES + 1024


def _write(path: Path, text: str, *, private=False) -> bool:
    """Writes `text` to `path` unless it holds it already (atomically: the broker may be reading
    it right now); True when the file changed."""
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def password_line(username: str, password: str) -> str:
    """A Mosquitto 2.0 password-file line (`$7$`: PBKDF2-HMAC-SHA512, as mosquitto_passwd writes)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, dklen=64)
    encoded = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    return f"{username}:$7${PBKDF2_ITERATIONS}${encoded[0]}${encoded[1]}\n"


def _password_matches(line: str, username: str, password: str) -> bool:
    try:
        user, rest = line.strip().split(":", 1)
        if user != username:
            return False
        _empty, kind, iterations, salt, digest = rest.split("$")
        if kind != "7":
            return False
        expected = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations), dklen=64)
    except ValueError:
        return False
    return secrets.compare_digest(expected, base64.b64decode(digest))


def acl_text(*, bridge_username: str) -> str:
    prefix = topics.PREFIX
    return f"""# Written by the portal (manage.py mqtt_broker_config): write it again rather than edit it.
# A device is named by its certificate's CN, its serial (%u): it may publish its check-ins, its
# commands' results and its will, and hear its commands; nothing of another device's.
pattern write {prefix}/%u/checkin
pattern write {prefix}/%u/commands/+/result
pattern write {prefix}/%u/status
pattern read {prefix}/%u/commands

# The portal's bridge and command publisher: every device's topics.
user {bridge_username}
topic readwrite {prefix}/#
"""


def conf_text(*, directory: Path, tls_port: int, bridge_host: str, bridge_port: int, tls: bool, user: str) -> str:
    d = directory.resolve()
    lines = [
        "# Written by the portal (manage.py mqtt_broker_config): write it again rather than edit it.",
        "# SIGHUP makes the broker read the revocation list (crl.pem) again, as the bridge does after",
        "# every revocation.",
        "per_listener_settings true",
        # Started as root, the broker runs as this user (its own pid file, persistence and keys).
        f"user {user}",
        f"pid_file {d / PIDFILE}",
        "persistence true",
        f"persistence_location {d / 'data'}/",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        f"max_packet_size {MAX_PACKET_BYTES}",
        # Per client, beyond those in flight: a bridge's session must hold every check-in that
        # arrives while it is busy or away (past the limit the broker drops QoS 1 messages); a
        # device's holds the commands sent while it is away. Bounded in bytes too.
        "max_queued_messages 1000000",
        # Unacknowledged QoS 1 messages in flight to a client (mosquitto's default is 20): the
        # bridge acknowledges a batch once it is written, so this is its largest batch.
        "max_inflight_messages 200",
        "max_queued_bytes 1073741824",
        "",
        "# The portal's bridge and command publisher, with their password.",
        f"listener {bridge_port} {bridge_host}",
        "allow_anonymous false",
        f"password_file {d / PASSWDFILE}",
        f"acl_file {d / ACLFILE}",
    ]
    if tls:
        lines += [
            "",
            "# Devices: mutual TLS with the certificate their product's CA issued; the CN is the username.",
            f"listener {tls_port}",
            f"cafile {d / CAFILE}",
            f"crlfile {d / CRLFILE}",
            f"certfile {d / SERVER_CERT}",
            f"keyfile {d / SERVER_KEY}",
            "tls_version tlsv1.2",
            "require_certificate true",
            "use_identity_as_username true",
            # The client id becomes the username, the CN: a device cannot take over another's session
            # by connecting with its serial as client id (the portal's takeover uses the bridge listener).
            "use_username_as_clientid true",
            "allow_anonymous false",
            f"acl_file {d / ACLFILE}",
        ]
    return "\n".join(lines) + "\n"


def _grant(directory: Path, owner: str) -> None:
    """Written as root, what the broker writes (data/) or reads after dropping its privileges (the
    password file, the server key) becomes `owner`'s: a user name or `uid:gid`. The broker CA's key
    does not: only the portal signs with it."""
    if os.geteuid() != 0:
        return
    uid, _, gid = owner.partition(":")
    try:
        entry = pwd.getpwnam(uid) if not uid.isdigit() else None
    except KeyError:
        return
    ids = (entry.pw_uid, entry.pw_gid) if entry else (int(uid), int(gid or uid))
    for path in (directory / "data", directory / PASSWDFILE, directory / SERVER_KEY):
        if path.exists():
            os.chown(path, *ids)


def _products_with_ca():
    """Every product, its CA made first when it has none yet: a device of any product may connect."""
    products = list(Product.objects.order_by("pk"))
    for product in products:
        product_ca_ensure(product=product)
    return products


def crl_text(products) -> str:
    return "".join(product_crl_cached(product=product) for product in products)


def trust_write(directory: Path | None = None) -> bool:
    """Writes the product CAs' certificates and their revocation lists as they are now (a product's
    first CA made since, a CA rotated, a revocation, a list signed anew); True when a file changed:
    then the broker must be told (`broker_reload`: on SIGHUP Mosquitto 2.0 reads both again)."""
    directory = Path(directory or settings.MQTT_DIR)
    products = list(Product.objects.exclude(ca_certificate_pem="").order_by("pk"))
    if not products:
        return False
    cas = _write(directory / CAFILE, "".join(p.ca_certificate_pem for p in products))
    crls = _write(directory / CRLFILE, crl_text(products))
    return cas or crls


def broker_reload(directory: Path | None = None) -> bool:
    """Sends SIGHUP to the broker whose pid file is in `directory` (it reads its CRL again); False
    when no broker runs there (its pid file is missing or stale)."""
    directory = Path(directory or settings.MQTT_DIR)
    try:
        pid = int((directory / PIDFILE).read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        logger.warning("mqtt.broker_reload_failed", extra={"directory": str(directory)})
        return False
    logger.info("mqtt.broker_reloaded", extra={"pid": pid})
    return True


def _broker_ca(directory: Path):
    """The portal's broker CA, made on first use and kept: devices trust it to verify the broker, so
    it must outlive every configuration written."""
    cert_path, key_path = directory / BROKER_CA, directory / BROKER_CA_KEY
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        return cert, key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{settings.PORTAL_NAME} MQTT broker CA"[:64])])
    cert, key = self_signed_ca(name)
    _write(key_path, private_key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    logger.info("mqtt.broker_ca_created", extra={"directory": str(directory)})
    return cert, key


def _san(names) -> list[x509.GeneralName]:
    general = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


def _server_cert_current(path: Path, names) -> bool:
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    fresh = cert.not_valid_after_utc - datetime.now(UTC) > SERVER_CERT_RENEW_BEFORE
    return fresh and set(present) == set(_san(names))


def server_certificate_ensure(directory: Path, names) -> bool:
    """The TLS listener's certificate for `names`, signed by the broker CA; issued again when the
    names change or it nears its end. True when it was (the broker must restart to use it)."""
    if _server_cert_current(directory / SERVER_CERT, names):
        return False
    ca_cert, ca_key = _broker_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVER_CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / SERVER_KEY, private_key_pem(key), private=True)
    _write(directory / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM).decode())
    return True


def broker_ca_certificate(directory: Path | None = None) -> str:
    """The broker CA's certificate (PEM) devices verify the broker with; empty before it exists."""
    path = Path(directory or settings.MQTT_DIR) / BROKER_CA
    return path.read_text() if path.exists() else ""


def mqtt_endpoint() -> dict | None:
    """What provisioning tells a device with a certificate about the broker: its URL
    (settings.MQTT_DEVICE_URL) and the CA to verify it with; None while MQTT is not offered."""
    if not settings.MQTT_DEVICE_URL or not (ca := broker_ca_certificate()):
        return None
    return {"url": settings.MQTT_DEVICE_URL, "ca": ca}


def broker_config_write(
    *,
    directory: Path | None = None,
    tls_port: int | None = None,
    bridge_host: str | None = None,
    bridge_port: int | None = None,
    bridge_username: str | None = None,
    bridge_password: str | None = None,
    server_names=None,
    user: str = "mosquitto",
    owner: str | None = None,
) -> Path:
    """Writes (or brings up to date) every file of the broker's configuration; returns the path of
    mosquitto.conf. Defaults come from the MQTT_* settings; `user` is who the broker runs as, `owner`
    (`uid:gid` or a name, default `user`) who owns its files when that user is not known here.
    Every product gets its CA now, so that a device of any product can connect; without any product
    the TLS listener is left out (a broker needs at least one CA to verify clients against)."""
    directory = Path(directory or settings.MQTT_DIR)
    bridge_password = bridge_password if bridge_password is not None else settings.MQTT_BRIDGE_PASSWORD
    if not bridge_password:
        raise ValueError("The bridge needs a password: set MQTT_BRIDGE_PASSWORD.")
    bridge_username = bridge_username or settings.MQTT_BRIDGE_USERNAME
    names = list(server_names or settings.MQTT_SERVER_NAMES)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    products = _products_with_ca()
    tls = bool(products)
    if tls:
        _write(directory / CAFILE, "".join(p.ca_certificate_pem for p in products))
        _write(directory / CRLFILE, crl_text(products))
        server_certificate_ensure(directory, names)
    else:
        logger.warning("mqtt.no_products", extra={"directory": str(directory)})
    passwd = directory / PASSWDFILE
    # Hashed with a fresh salt: written again only when the password changed.
    if not (passwd.exists() and _password_matches(passwd.read_text(), bridge_username, bridge_password)):
        _write(passwd, password_line(bridge_username, bridge_password), private=True)
    _write(directory / ACLFILE, acl_text(bridge_username=bridge_username))
    conf = directory / CONF
    _write(
        conf,
        conf_text(
            directory=directory,
            tls_port=tls_port or settings.MQTT_TLS_PORT,
            bridge_host=bridge_host or settings.MQTT_HOST,
            bridge_port=bridge_port or settings.MQTT_PORT,
            tls=tls,
            user=user,
        ),
    )
    _grant(directory, owner or user)
    return conf
