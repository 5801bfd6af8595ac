"""add_item_notes: a nullable notes column.

Revision ID: 0002_add_item_notes
Revises: 0001_init
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_add_item_notes"
down_revision = "0001_init"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("items", sa.Column("notes", sa.Text, nullable=True))


def downgrade():
    op.drop_column("items", "notes")
