from django.db import migrations
from django.db.models import Q


def forget_previous_owners_values(apps, schema_editor):
    # Devices released before a change of owner wiped them kept what they last reported to their
    # previous owner; the next owner would have read it.
    Device = apps.get_model("devices", "Device")
    Device.objects.filter(owner__isnull=True).filter(~Q(values={}) | Q(last_ip__isnull=False)).update(
        values={}, last_ip=None
    )


class Migration(migrations.Migration):
    dependencies = [("devices", "0004_stale_check_at")]

    operations = [migrations.RunPython(forget_previous_owners_values, migrations.RunPython.noop, elidable=True)]
