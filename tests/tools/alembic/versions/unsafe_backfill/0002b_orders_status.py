"""orders.status, filled in the same revision: op.add_column takes ACCESS EXCLUSIVE on
orders, and op.execute's UPDATE then rewrites every row while the migration's
transaction still holds it, so every query on orders waits for the whole backfill

Revision ID: 0002b
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002b"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("status", sa.Text, nullable=True))
    op.execute("UPDATE orders SET status = 'new'")


def downgrade():
    op.drop_column("orders", "status")
