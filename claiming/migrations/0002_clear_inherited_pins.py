from django.db import migrations
from django.db.models import Exists, OuterRef


def clear_inherited_pins(apps, schema_editor):
    # Before every change of owner cleared the PIN, an owner could inherit one that a previous owner
    # (or whoever read the label) still knew, and turn PIN claiming on with it. Only a PIN the
    # current owner chose since owning the device is kept.
    Device = apps.get_model("devices", "Device")
    OwnershipEvent = apps.get_model("claiming", "OwnershipEvent")
    chosen_by_owner = OwnershipEvent.objects.filter(
        device=OuterRef("pk"), kind="pin_changed", actor=OuterRef("owner"), detail__istartswith="new pin"
    )
    with_pins = Device.objects.filter(owner__isnull=False).exclude(pin_digest="")
    # Devices owned from before owned_since was kept have no start to compare with: any PIN their
    # owner chose counts.
    with_pins.filter(owned_since__isnull=False).exclude(
        Exists(chosen_by_owner.filter(created_at__gte=OuterRef("owned_since")))
    ).update(pin_digest="", claimable=False)
    with_pins.filter(owned_since__isnull=True).exclude(Exists(chosen_by_owner)).update(pin_digest="", claimable=False)


class Migration(migrations.Migration):
    dependencies = [
        ("claiming", "0001_initial"),
        ("devices", "0005_forget_previous_owners_values"),
    ]

    operations = [migrations.RunPython(clear_inherited_pins, migrations.RunPython.noop, elidable=True)]
