"""Applications, links and webhook delivery."""


def deliveries_fan_out(events):
    """Outbox consumer: one Delivery per (event, linked application with a callback)."""
