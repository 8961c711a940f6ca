"""controlled procedures: a process version's status (pending, approved, rejected, withdrawn), effective date and
time, who decided and when, the reason of a rejection, withdrawal or installation release, and the approval's
e-signature manifest (printed name, meaning, hash). Versions deployed before are approved, effective since they
were deployed.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 20:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

import app.models.types

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=20), nullable=False, server_default='approved'))
        batch_op.add_column(sa.Column('effective_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('effective_at', app.models.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('decided_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('decided_at', app.models.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('decision_reason', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('signed_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('signed_meaning', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('signed_hash', sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_process_versions_decided_by_id_users'), 'users',
                                    ['decided_by_id'], ['id'])
    # What was deployed before document control was in use: effective since its deployment.
    op.execute("UPDATE process_versions SET effective_at = created_at WHERE effective_at IS NULL")


def downgrade():
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_process_versions_decided_by_id_users'), type_='foreignkey')
        batch_op.drop_column('signed_hash')
        batch_op.drop_column('signed_meaning')
        batch_op.drop_column('signed_name')
        batch_op.drop_column('decision_reason')
        batch_op.drop_column('decided_at')
        batch_op.drop_column('decided_by_id')
        batch_op.drop_column('effective_at')
        batch_op.drop_column('effective_on')
        batch_op.drop_column('status')
