"""stock locations, FEFO shipments and scrap records (issue 23 section 2): warehouses and their storage locations
(the location strings stock levels and sensors use), customers' minimum remaining shelf life, shipment orders picked
first-expiry-first-out with a QA-signed override, shipments linked to their order, and scrap / destruction records

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-07 22:15:00.000000

"""
import sqlalchemy as sa
from alembic import op

import app.models.types

# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('warehouses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_warehouses')),
    sa.UniqueConstraint('code', name=op.f('uq_warehouses_code'))
    )
    op.create_table('shipment_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_no', sa.String(length=60), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('shipped_on', sa.Date(), nullable=False),
    sa.Column('min_shelf_life_days', sa.Integer(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('refused', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('override_lots', sa.JSON(), nullable=False),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('override_user_id', sa.Integer(), nullable=True),
    sa.Column('override_printed_name', sa.String(length=200), nullable=True),
    sa.Column('override_meaning', sa.String(length=40), nullable=True),
    sa.Column('override_signed_at', app.models.types.UTCDateTime(), nullable=True),
    sa.Column('override_hash', sa.String(length=64), nullable=True),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_shipment_orders_quantity_positive')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_shipment_orders_created_by_id_users')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_shipment_orders_customer_id_customers')),
    sa.ForeignKeyConstraint(['override_user_id'], ['users.id'], name=op.f('fk_shipment_orders_override_user_id_users')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_shipment_orders_product_id_products')),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_shipment_orders_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipment_orders'))
    )
    with op.batch_alter_table('shipment_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipment_orders_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_orders_document_no'), ['document_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_orders_product_id'), ['product_id'], unique=False)

    op.create_table('storage_locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_storage_locations_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_locations')),
    sa.UniqueConstraint('code', name=op.f('uq_storage_locations_code'))
    )
    with op.batch_alter_table('storage_locations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_storage_locations_warehouse_id'), ['warehouse_id'], unique=False)

    op.create_table('scrap_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('product_lot_id', sa.Integer(), nullable=False),
    sa.Column('location', sa.String(length=120), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('witness', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('scrapped_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('approved_by', sa.String(length=200), nullable=False),
    sa.Column('lot_scrapped', sa.Boolean(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_scrap_records_quantity_positive')),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], name=op.f('fk_scrap_records_instance_id_process_instances')),
    sa.ForeignKeyConstraint(['product_lot_id'], ['product_lots.id'], name=op.f('fk_scrap_records_product_lot_id_product_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scrap_records'))
    )
    with op.batch_alter_table('scrap_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scrap_records_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scrap_records_product_lot_id'), ['product_lot_id'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('min_shelf_life_days', sa.Integer(), nullable=True))

    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_shipments_order_id'), ['order_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_shipments_order_id_shipment_orders'), 'shipment_orders', ['order_id'], ['id'])



def downgrade():
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_shipments_order_id_shipment_orders'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_shipments_order_id'))
        batch_op.drop_column('order_id')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('min_shelf_life_days')

    with op.batch_alter_table('scrap_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scrap_records_product_lot_id'))
        batch_op.drop_index(batch_op.f('ix_scrap_records_instance_id'))

    op.drop_table('scrap_records')
    with op.batch_alter_table('storage_locations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_storage_locations_warehouse_id'))

    op.drop_table('storage_locations')
    with op.batch_alter_table('shipment_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipment_orders_product_id'))
        batch_op.drop_index(batch_op.f('ix_shipment_orders_document_no'))
        batch_op.drop_index(batch_op.f('ix_shipment_orders_customer_id'))

    op.drop_table('shipment_orders')
    op.drop_table('warehouses')
