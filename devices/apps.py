from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Devices"

    def ready(self):
        from . import access, device_page, outbox, panels, sharing_views
        from .mqtt import push

        # New commands go out to MQTT devices at once (a no-op while MQTT is off).
        outbox.register_consumer("devices.mqtt.push", push.commands_push_consumer)

        # The device page's own panels; apps and claiming add theirs (orders: devices/panels.py).
        panels.register(
            "rename",
            "devices/device_panels/rename_action.html",
            slot=panels.ACTIONS,
            order=100,
            capability=access.MANAGE,
        )
        # Live (refreshed in place, devices/panels.py): what a check-in or a command's progress changes.
        panels.register("connection", "devices/device_panels/connection.html", order=100, live=True)
        panels.register(
            "values", "devices/device_panels/values.html", context=device_page.values_context, order=200, live=True
        )
        panels.register(
            "charts",
            "devices/device_panels/charts.html",
            context=device_page.charts_context,
            order=300,
            wide=True,
            live=True,
        )
        # Commands sent are seen by everyone who sees the device; the form is for who may operate it.
        panels.register(
            "commands",
            "devices/device_panels/commands.html",
            context=device_page.commands_context,
            order=500,
            live=True,
        )
        # Sharing (docs/sharing.md): the owner's panels, the one for people it is shared with, and the
        # notice support staff see (it records their view for the owner).
        owner = {"capability": access.MANAGE}
        panels.register(
            "support-notice",
            "devices/panels/support_notice.html",
            context=sharing_views.support_notice_panel_context,
            slot=panels.NOTICES,
            order=50,
            roles=[access.SUPPORT],
        )
        panels.register(
            "share-invite", "devices/panels/invite.html", context=sharing_views.invite_panel_context, order=800, **owner
        )
        panels.register(
            "my-access",
            "devices/panels/my_access.html",
            context=sharing_views.my_access_panel_context,
            order=800,
            roles=[access.VIEWER, access.OPERATOR],
        )
        panels.register(
            "share-access", "devices/panels/access.html", context=sharing_views.access_panel_context, order=810, **owner
        )
        panels.register(
            "share-invitations",
            "devices/panels/invitations.html",
            context=sharing_views.invitations_panel_context,
            order=820,
            wide=True,
            **owner,
        )
        panels.register(
            "support-grant",
            "devices/panels/support_grant.html",
            context=sharing_views.support_panel_context,
            order=830,
            **owner,
        )
        panels.register(
            "access-audit", "devices/panels/audit.html", context=sharing_views.audit_panel_context, order=840, **owner
        )
