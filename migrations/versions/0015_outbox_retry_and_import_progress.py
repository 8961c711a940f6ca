"""outbox_messages.failing_since (retries for a period, not a number of attempts); import_jobs progress and
heartbeat (rows_read, rows_expected, heartbeat_at) so every worker sees a running import

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-09 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

import app.models.types

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failing_since', app.models.types.UTCDateTime(), nullable=True))
    # A message already retrying counts its period from its first attempt, which was no later than it was queued.
    op.execute("UPDATE outbox_messages SET failing_since = created_at WHERE status = 'queued' AND attempts > 0")
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rows_read', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('rows_expected', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('heartbeat_at', app.models.types.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('rows_expected')
        batch_op.drop_column('rows_read')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('failing_since')
