"""sterilization batch records (issue 23 section 4): one row per sterilization cycle (method, parameters and the
validated limits applied, biological indicator, status, CAPA, QA's e-signed decision) and its load of product lots

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 22:15:00.000000

"""
import sqlalchemy as sa
from alembic import op

import app.models.types

# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sterilization_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_number', sa.String(length=60), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('sterilizer', sa.String(length=120), nullable=False),
    sa.Column('processed_on', sa.Date(), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('limits', sa.JSON(), nullable=False),
    sa.Column('bi_result', sa.String(length=10), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('failure_reasons', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('capa_instance_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', app.models.types.UTCDateTime(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=False),
    sa.Column('signed_name', sa.String(length=200), nullable=False),
    sa.Column('signed_meaning', sa.String(length=40), nullable=False),
    sa.Column('signed_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['capa_instance_id'], ['process_instances.id'],
                            name=op.f('fk_sterilization_batches_capa_instance_id_process_instances')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_sterilization_batches_created_by_id_users')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_sterilization_batches_decided_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sterilization_batches')),
    sa.UniqueConstraint('batch_number', name=op.f('uq_sterilization_batches_batch_number'))
    )
    with op.batch_alter_table('sterilization_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sterilization_batches_status'), ['status'], unique=False)

    op.create_table('sterilization_loads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('product_lot_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_sterilization_loads_quantity_not_negative')),
    sa.ForeignKeyConstraint(['batch_id'], ['sterilization_batches.id'],
                            name=op.f('fk_sterilization_loads_batch_id_sterilization_batches')),
    sa.ForeignKeyConstraint(['product_lot_id'], ['product_lots.id'],
                            name=op.f('fk_sterilization_loads_product_lot_id_product_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sterilization_loads')),
    sa.UniqueConstraint('batch_id', 'product_lot_id', name=op.f('uq_sterilization_loads_batch_id'))
    )
    with op.batch_alter_table('sterilization_loads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sterilization_loads_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sterilization_loads_product_lot_id'), ['product_lot_id'], unique=False)


def downgrade():
    with op.batch_alter_table('sterilization_loads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sterilization_loads_product_lot_id'))
        batch_op.drop_index(batch_op.f('ix_sterilization_loads_batch_id'))
    op.drop_table('sterilization_loads')
    with op.batch_alter_table('sterilization_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sterilization_batches_status'))
    op.drop_table('sterilization_batches')
