"""Order.status, a nullable column without a default: a catalog change only. Its rows
are filled by 0008, in a transaction of its own."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0006_validate_order_total_check")]

    operations = [
        migrations.AddField(
            model_name="order",
            name="status",
            field=models.CharField(max_length=20, null=True),
        ),
    ]
