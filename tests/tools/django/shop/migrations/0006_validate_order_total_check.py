from django.contrib.postgres.operations import ValidateConstraint
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("shop", "0005_order_total_check")]

    operations = [
        ValidateConstraint(model_name="order", name="shop_order_total_nonnegative"),
    ]
