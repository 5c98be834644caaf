"""MQTT beside HTTP: the broker's configuration, the topics, the bridge and the command publisher.

Devices connect to Mosquitto with the certificate their product's CA issued from their CSR; the
bridge (`manage.py mqtt_bridge`) feeds what they publish to the same services as the HTTP device
protocol (devices.protocol.services, devices.command_queue, devices.stale).
"""
