from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devices.mqtt.broker import broker_config_write


class Command(BaseCommand):
    help = (
        "Writes the Mosquitto 2.0 configuration (TLS listener for devices, bridge listener, CAs, CRLs, ACL, "
        "password file, server certificate) and prints the path of mosquitto.conf. Run it again after adding "
        "a product; it keeps the broker CA devices trust."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dir", default=str(settings.MQTT_DIR), help="Where to write (MQTT_DIR).")
        parser.add_argument("--tls-port", type=int, default=settings.MQTT_TLS_PORT, help="Devices' TLS port.")
        parser.add_argument("--bridge-host", default=settings.MQTT_HOST, help="Address of the bridge listener.")
        parser.add_argument("--bridge-port", type=int, default=settings.MQTT_PORT, help="Port of the bridge listener.")
        parser.add_argument(
            "--server-name",
            action="append",
            dest="server_names",
            help="A name or address devices connect to (repeat; default MQTT_SERVER_NAMES).",
        )

        parser.add_argument("--broker-user", default="mosquitto", help="The user the broker runs as (its `user`).")
        parser.add_argument(
            "--broker-owner",
            help="uid:gid owning the broker's files when --broker-user is not known on this host (containers).",
        )

    def handle(
        self, *args, dir, tls_port, bridge_host, bridge_port, server_names, broker_user, broker_owner, **options
    ):
        if not settings.MQTT_BRIDGE_PASSWORD:
            raise CommandError("Set MQTT_BRIDGE_PASSWORD (or MQTT_BRIDGE_PASSWORD_FILE): the bridge's credential.")
        conf = broker_config_write(
            directory=Path(dir),
            tls_port=tls_port,
            bridge_host=bridge_host,
            bridge_port=bridge_port,
            server_names=server_names,
            user=broker_user,
            owner=broker_owner,
        )
        self.stdout.write(str(conf))
