import signal
import socket

from django.core.management.base import BaseCommand, CommandError

from devices.mqtt.bridge import Bridge
from devices.mqtt.client import mqtt_enabled


class Command(BaseCommand):
    help = (
        "Runs the MQTT bridge: devices' check-ins, command results and last wills through the broker into the "
        "portal, and the broker's revocation list kept fresh. Run several for more throughput (shared subscription)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--client-id",
            default=f"portal-bridge-{socket.gethostname()}",
            help="This bridge's MQTT client id: keep it across restarts (its session keeps unhandled messages); "
            "give each bridge its own.",
        )
        parser.add_argument("--no-watch", action="store_true", help="Leave the revocation list to another bridge.")

    def handle(self, *args, client_id, no_watch, **options):
        if not mqtt_enabled():
            raise CommandError("Set MQTT_BRIDGE_PASSWORD: the bridge's credential on the broker.")
        bridge = Bridge(client_id=client_id, watch=not no_watch)
        signal.signal(signal.SIGINT, lambda *_: bridge.stop())
        signal.signal(signal.SIGTERM, lambda *_: bridge.stop())
        self.stdout.write(f"MQTT bridge {client_id} running; Ctrl-C stops it.")
        bridge.run()
