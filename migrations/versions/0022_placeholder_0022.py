"""supplier quality scores (issue 23 section 3)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 22:15:00.000000

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
