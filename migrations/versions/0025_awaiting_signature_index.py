"""a partial index of the open e-signature steps (assignee, group): the inbox's "awaiting my approval" badge reads
them on every inbox view, and without it walked every open task of the user's groups

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08 01:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

OPEN_SIGNATURE_STEP = ("state = 'ready' AND kind = 'user' AND signature_meaning IS NOT NULL "
                       "AND signature_meaning <> ''")


def upgrade():
    op.create_index('ix_tasks_awaiting_signature', 'tasks', ['assignee_id', 'group_name'], unique=False,
                    sqlite_where=sa.text(OPEN_SIGNATURE_STEP), postgresql_where=sa.text(OPEN_SIGNATURE_STEP))


def downgrade():
    op.drop_index('ix_tasks_awaiting_signature', table_name='tasks')
