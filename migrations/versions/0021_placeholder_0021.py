"""stock locations, FEFO shipments and scrap records (issue 23 section 2)

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-07 22:15:00.000000

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
