"""supplier quality scores (issue 23 section 3): every evaluation of a supplier's score over its rolling window
(figures, score, band) and the supplier reviews the scores start

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 22:15:00.000000

"""
import sqlalchemy as sa
from alembic import op

import app.models.types

# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('supplier_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('band', sa.String(length=20), nullable=False),
    sa.Column('proposed_status', sa.String(length=20), nullable=False),
    sa.Column('status_before', sa.String(length=20), nullable=False),
    sa.Column('decided_status', sa.String(length=20), nullable=False),
    sa.Column('decision_note', sa.Text(), nullable=False),
    sa.Column('started_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('closed_at', app.models.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                            name=op.f('fk_supplier_reviews_instance_id_process_instances')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_supplier_reviews_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supplier_reviews')),
    sa.UniqueConstraint('instance_id', name=op.f('uq_supplier_reviews_instance_id'))
    )
    with op.batch_alter_table('supplier_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supplier_reviews_supplier_id'), ['supplier_id'], unique=False)

    op.create_table('supplier_evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('evaluated_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('window_days', sa.Integer(), nullable=False),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('band', sa.String(length=20), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['review_id'], ['supplier_reviews.id'],
                            name=op.f('fk_supplier_evaluations_review_id_supplier_reviews')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'],
                            name=op.f('fk_supplier_evaluations_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supplier_evaluations'))
    )
    with op.batch_alter_table('supplier_evaluations', schema=None) as batch_op:
        batch_op.create_index('ix_supplier_evaluations_supplier_at', ['supplier_id', 'evaluated_at'], unique=False)


def downgrade():
    with op.batch_alter_table('supplier_evaluations', schema=None) as batch_op:
        batch_op.drop_index('ix_supplier_evaluations_supplier_at')
    op.drop_table('supplier_evaluations')
    with op.batch_alter_table('supplier_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supplier_reviews_supplier_id'))
    op.drop_table('supplier_reviews')
