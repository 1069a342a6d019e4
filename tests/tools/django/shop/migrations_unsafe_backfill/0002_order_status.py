"""A data migration next to its schema change, as one migration: Django runs it in one
transaction, so the AddField's ACCESS EXCLUSIVE on shop_order is still held while
RunPython's UPDATE rewrites every row, and every query on shop_order waits for it."""
from django.db import migrations, models


def fill_status(apps, schema_editor):
    Order = apps.get_model("shop", "Order")
    Order.objects.update(status="new")


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="order",
            name="status",
            field=models.CharField(max_length=20, null=True),
        ),
        migrations.RunPython(fill_status, migrations.RunPython.noop),
    ]
