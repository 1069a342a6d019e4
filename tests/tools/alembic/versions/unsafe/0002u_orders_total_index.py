"""index orders.total, the way autogenerate writes it: a plain CREATE INDEX, which
blocks writes to orders for the whole build

Revision ID: 0002u
Revises: 0001
"""
from alembic import op

revision = "0002u"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("orders_total_idx", "orders", ["total"])


def downgrade():
    op.drop_index("orders_total_idx", table_name="orders")
