"""Checks the existing rows against the foreign key of 0003 under SHARE UPDATE
EXCLUSIVE, which blocks neither reads nor writes."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("shop", "0003_order_customer")]

    operations = [
        migrations.RunSQL(
            'ALTER TABLE "shop_order" VALIDATE CONSTRAINT "shop_order_customer_id_fk"',
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
