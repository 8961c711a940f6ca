"""stock movement ledger: one append-only row per change of a stock level's quantity (lot, location, signed change,
balance, kind, the shipment order / scrap instance / import job, who, when); an opening-balance row for every stock
level held now, so the ledger adds up to the levels from the start; triggers refuse UPDATE, DELETE and TRUNCATE

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08 01:02:51.144582

"""
import sqlalchemy as sa
from alembic import op

import app.models.types
from app.models.stock import DROP_LEDGER_GUARDS_SQL, install_ledger_guards
from app.models.types import utcnow

# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stock_movements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_lot_id', sa.Integer(), nullable=False),
    sa.Column('location', sa.String(length=120), nullable=False),
    sa.Column('change', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('import_job_id', sa.Integer(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('at', app.models.types.UTCDateTime(), nullable=False),
    sa.CheckConstraint('balance >= 0', name=op.f('ck_stock_movements_balance_not_negative')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_stock_movements_actor_id_users')),
    sa.ForeignKeyConstraint(['import_job_id'], ['import_jobs.id'],
                            name=op.f('fk_stock_movements_import_job_id_import_jobs')),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                            name=op.f('fk_stock_movements_instance_id_process_instances')),
    sa.ForeignKeyConstraint(['order_id'], ['shipment_orders.id'],
                            name=op.f('fk_stock_movements_order_id_shipment_orders')),
    sa.ForeignKeyConstraint(['product_lot_id'], ['product_lots.id'],
                            name=op.f('fk_stock_movements_product_lot_id_product_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_movements'))
    )
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stock_movements_import_job_id'), ['import_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stock_movements_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stock_movements_location'), ['location'], unique=False)
        batch_op.create_index('ix_stock_movements_lot_location', ['product_lot_id', 'location', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stock_movements_order_id'), ['order_id'], unique=False)

    # The opening balance: every stock level held now, as it stands (nobody's change, at the upgrade).
    op.get_bind().execute(sa.text(
        "INSERT INTO stock_movements (product_lot_id, location, change, balance, kind, actor_name, at) "
        "SELECT product_lot_id, location, quantity, quantity, 'opening', '', :at FROM stock_levels ORDER BY id"
    ).bindparams(sa.bindparam("at", utcnow(), type_=app.models.types.UTCDateTime())))
    install_ledger_guards(op.get_bind())


def downgrade():
    for statement in DROP_LEDGER_GUARDS_SQL[op.get_bind().dialect.name]:
        op.execute(statement)
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stock_movements_order_id'))
        batch_op.drop_index('ix_stock_movements_lot_location')
        batch_op.drop_index(batch_op.f('ix_stock_movements_location'))
        batch_op.drop_index(batch_op.f('ix_stock_movements_instance_id'))
        batch_op.drop_index(batch_op.f('ix_stock_movements_import_job_id'))

    op.drop_table('stock_movements')
