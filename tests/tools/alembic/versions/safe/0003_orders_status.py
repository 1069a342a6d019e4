"""orders.status, a nullable column without a default: a catalog change only

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("status", sa.Text, nullable=True))


def downgrade():
    op.drop_column("orders", "status")
