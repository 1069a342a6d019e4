"""The index on shop_order.total, built without blocking writes: CREATE INDEX
CONCURRENTLY cannot run in a transaction, so this migration is not atomic."""
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("shop", "0001_initial")]

    operations = [
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(fields=["total"], name="shop_order_total_idx"),
        ),
    ]
