from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Devices"

    def ready(self):
        from . import outbox
        from .mqtt import push

        # New commands go out to MQTT devices at once (a no-op while MQTT is off).
        outbox.register_consumer("devices.mqtt.push", push.commands_push_consumer)
