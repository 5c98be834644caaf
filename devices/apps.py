from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Devices"

    def ready(self):
        from . import access, device_page, panels

        # The device page's own panels; apps and claiming add theirs (orders: devices/panels.py).
        panels.register(
            "rename",
            "devices/device_panels/rename_action.html",
            slot=panels.ACTIONS,
            order=100,
            capability=access.MANAGE,
        )
        panels.register("connection", "devices/device_panels/connection.html", order=100)
        panels.register("values", "devices/device_panels/values.html", context=device_page.values_context, order=200)
        panels.register(
            "charts", "devices/device_panels/charts.html", context=device_page.charts_context, order=300, wide=True
        )
        panels.register(
            "commands",
            "devices/device_panels/commands.html",
            context=device_page.commands_context,
            order=500,
            capability=access.OPERATE,
        )
