"""process versions: their DMN decision tables and the callee versions their call activities are pinned to

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:40:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decisions', sa.JSON(), nullable=True))
    op.execute("UPDATE process_versions SET decisions = '{}'")
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.alter_column('decisions', existing_type=sa.JSON(), nullable=False)
    op.create_table('process_version_calls',
    sa.Column('caller_id', sa.Integer(), nullable=False),
    sa.Column('callee_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['callee_id'], ['process_versions.id'], name=op.f('fk_process_version_calls_callee_id_process_versions')),
    sa.ForeignKeyConstraint(['caller_id'], ['process_versions.id'], name=op.f('fk_process_version_calls_caller_id_process_versions')),
    sa.PrimaryKeyConstraint('caller_id', 'callee_id', name=op.f('pk_process_version_calls'))
    )
    with op.batch_alter_table('process_version_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_version_calls_callee_id'), ['callee_id'], unique=False)


def downgrade():
    with op.batch_alter_table('process_version_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_process_version_calls_callee_id'))
    op.drop_table('process_version_calls')
    with op.batch_alter_table('process_versions', schema=None) as batch_op:
        batch_op.drop_column('decisions')
