"""storage and transport conditions: products' storage ranges and excursion tolerance, sensors, readings (one
narrow table keyed by sensor and second, integer values, WITHOUT ROWID on SQLite) and excursions

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-07 19:27:12.105248

"""
import sqlalchemy as sa
from alembic import op

import app.models.types

# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sensors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.String(length=20), nullable=False),
    sa.Column('place', sa.String(length=20), nullable=False),
    sa.Column('location', sa.String(length=120), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=True),
    sa.Column('interval_seconds', sa.Integer(), nullable=False),
    sa.CheckConstraint('interval_seconds > 0', name=op.f('ck_sensors_interval_positive')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_sensors_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sensors')),
    sa.UniqueConstraint('code', name=op.f('uq_sensors_code'))
    )
    with op.batch_alter_table('sensors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sensors_location'), ['location'], unique=False)
        batch_op.create_index(batch_op.f('ix_sensors_shipment_id'), ['shipment_id'], unique=False)

    op.create_table('excursions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sensor_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.String(length=20), nullable=False),
    sa.Column('started_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('ended_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('minutes_out', sa.Double(), nullable=False),
    sa.Column('minutes_unknown', sa.Double(), nullable=False),
    sa.Column('max_value', sa.Integer(), nullable=False),
    sa.Column('min_value', sa.Integer(), nullable=False),
    sa.Column('mkt', sa.Integer(), nullable=True),
    sa.Column('mkt_30_days', sa.Integer(), nullable=True),
    sa.Column('range_min', sa.Integer(), nullable=True),
    sa.Column('range_max', sa.Integer(), nullable=True),
    sa.Column('tolerance_minutes', sa.Integer(), nullable=False),
    sa.Column('window_hours', sa.Integer(), nullable=False),
    sa.Column('lots', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('decisions', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('detected_at', app.models.types.UTCDateTime(), nullable=False),
    sa.Column('closed_at', app.models.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                            name=op.f('fk_excursions_instance_id_process_instances')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_excursions_product_id_products')),
    sa.ForeignKeyConstraint(['sensor_id'], ['sensors.id'], name=op.f('fk_excursions_sensor_id_sensors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_excursions'))
    )
    with op.batch_alter_table('excursions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_excursions_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_excursions_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_excursions_sensor_id'), ['sensor_id'], unique=False)

    op.create_table('readings',
    sa.Column('sensor_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('value', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['sensor_id'], ['sensors.id'], name=op.f('fk_readings_sensor_id_sensors')),
    sa.PrimaryKeyConstraint('sensor_id', 'at', name=op.f('pk_readings')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_temp_min', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('storage_temp_max', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('storage_rh_min', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('storage_rh_max', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('excursion_tolerance_minutes', sa.Integer(), server_default='30', nullable=False))



def downgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_column('excursion_tolerance_minutes')
        batch_op.drop_column('storage_rh_max')
        batch_op.drop_column('storage_rh_min')
        batch_op.drop_column('storage_temp_max')
        batch_op.drop_column('storage_temp_min')

    op.drop_table('readings')
    with op.batch_alter_table('excursions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_excursions_sensor_id'))
        batch_op.drop_index(batch_op.f('ix_excursions_product_id'))
        batch_op.drop_index(batch_op.f('ix_excursions_instance_id'))

    op.drop_table('excursions')
    with op.batch_alter_table('sensors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sensors_shipment_id'))
        batch_op.drop_index(batch_op.f('ix_sensors_location'))

    op.drop_table('sensors')
