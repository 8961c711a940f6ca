"""inbox indexes (per assignee and per group, in the inbox's order, open user tasks only) instead of (state,
group_name) and (state, assignee_id), the timer tick's (status, next_timer_at) index, and the instance title search
index (SQLite FTS5 trigram / PostgreSQL pg_trgm)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-09 12:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

from app.models.search import drop_title_search, install_title_search

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

OPEN_USER_TASK = "state = 'ready' AND kind = 'user'"
ORDER_AND_FILTERS = [sa.text('(due_at IS NULL)'), 'due_at', 'id', 'instance_id', 'name', 'name_zh', 'state', 'kind']


def upgrade():
    op.create_index('ix_process_instances_status_timer', 'process_instances', ['status', 'next_timer_at'],
                    unique=False)
    # The inbox was their only reader; with statistics SQLite preferred them to the inbox indexes.
    op.drop_index('ix_tasks_state_group', table_name='tasks')
    op.drop_index('ix_tasks_state_assignee', table_name='tasks')
    claimed = f"{OPEN_USER_TASK} AND assignee_id IS NOT NULL"
    op.create_index('ix_tasks_inbox_assignee', 'tasks', ['assignee_id', *ORDER_AND_FILTERS], unique=False,
                    sqlite_where=sa.text(claimed), postgresql_where=sa.text(claimed))
    offered = f"{OPEN_USER_TASK} AND assignee_id IS NULL"
    op.create_index('ix_tasks_inbox_group', 'tasks', ['group_name', *ORDER_AND_FILTERS, 'assignee_id'], unique=False,
                    sqlite_where=sa.text(offered), postgresql_where=sa.text(offered))
    # Without FTS5/trigram (SQLite) or the right to create pg_trgm (PostgreSQL) the search works unindexed.
    install_title_search(op.get_bind())


def downgrade():
    drop_title_search(op.get_bind())
    op.drop_index('ix_tasks_inbox_group', table_name='tasks')
    op.drop_index('ix_tasks_inbox_assignee', table_name='tasks')
    op.create_index('ix_tasks_state_assignee', 'tasks', ['state', 'assignee_id'], unique=False)
    op.create_index('ix_tasks_state_group', 'tasks', ['state', 'group_name'], unique=False)
    op.drop_index('ix_process_instances_status_timer', table_name='process_instances')
