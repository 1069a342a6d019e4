"""The models as they end up: every migration package of this app leads here, the safe
one through changes that do not block writes, the unsafe ones through what
`makemigrations` writes for the same model change."""
from django.db import models


class Customer(models.Model):
    name = models.TextField()


class Order(models.Model):
    total = models.IntegerField()
    customer = models.ForeignKey(Customer, null=True, on_delete=models.PROTECT, db_index=False)
    status = models.CharField(max_length=20, null=True)

    class Meta:
        indexes = [models.Index(fields=["total"], name="shop_order_total_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(total__gte=0), name="shop_order_total_nonnegative"),
        ]
