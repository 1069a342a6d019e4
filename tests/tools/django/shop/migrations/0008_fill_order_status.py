"""Fills Order.status once 0007's transaction has committed (and with it the lock the
AddField took). Not atomic: each batch commits on its own, so no transaction holds row
locks on the whole table."""
from django.db import migrations


def fill_status(apps, schema_editor):
    Order = apps.get_model("shop", "Order")
    while True:
        batch = list(Order.objects.filter(status__isnull=True).values_list("pk", flat=True)[:1000])
        if not batch:
            break
        Order.objects.filter(pk__in=batch).update(status="new")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("shop", "0007_order_status")]

    operations = [
        migrations.RunPython(fill_status, migrations.RunPython.noop),
    ]
