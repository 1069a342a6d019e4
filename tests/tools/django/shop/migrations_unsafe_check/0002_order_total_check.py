"""What makemigrations writes for Meta.constraints: ADD CONSTRAINT ... CHECK, which scans
every row of shop_order under ACCESS EXCLUSIVE."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.AddConstraint(
            model_name="order",
            constraint=models.CheckConstraint(condition=models.Q(total__gte=0), name="shop_order_total_nonnegative"),
        ),
    ]
