"""Order.customer, a FOREIGN KEY added NOT VALID: existing rows are not checked while
both tables are locked (0004 checks them without blocking writes). Django has no
operation for a NOT VALID foreign key, so the database side is written out while the
model state gets the ordinary field."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0002_order_total_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="order",
                    name="customer",
                    field=models.ForeignKey(
                        null=True, on_delete=models.PROTECT, to="shop.customer", db_index=False
                    ),
                ),
            ],
            database_operations=[
                migrations.AddField(
                    model_name="order",
                    name="customer",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=models.PROTECT,
                        to="shop.customer",
                        db_index=False,
                        db_constraint=False,
                    ),
                ),
                migrations.RunSQL(
                    'ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_customer_id_fk" '
                    'FOREIGN KEY ("customer_id") REFERENCES "shop_customer" ("id") '
                    "DEFERRABLE INITIALLY DEFERRED NOT VALID",
                    reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_customer_id_fk"',
                ),
            ],
        ),
    ]
