"""The CHECK on shop_order.total, added NOT VALID so existing rows are not scanned
under ACCESS EXCLUSIVE (0006 validates it)."""
from django.contrib.postgres.operations import AddConstraintNotValid
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0004_validate_order_customer")]

    operations = [
        AddConstraintNotValid(
            model_name="order",
            constraint=models.CheckConstraint(condition=models.Q(total__gte=0), name="shop_order_total_nonnegative"),
        ),
    ]
