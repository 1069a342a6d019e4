"""What makemigrations writes for Order.customer: ADD COLUMN ... REFERENCES, a foreign
key validated against every row while writes to both tables are blocked."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="order",
            name="customer",
            field=models.ForeignKey(null=True, on_delete=models.PROTECT, to="shop.customer", db_index=False),
        ),
    ]
