"""instance_lots.previous_status and lifted_at: a lifted hold restores the lot's earlier status

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 16:40:00

"""
import sqlalchemy as sa
from alembic import op

import app.models.types

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instance_lots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_status', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('lifted_at', app.models.types.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('instance_lots', schema=None) as batch_op:
        batch_op.drop_column('lifted_at')
        batch_op.drop_column('previous_status')
