"""recall_lines.quantity_forwarded: units a consignee passed on to other consignees of the recall

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# What each consignee shipped on to another consignee of the same recall, from the shipments it was built from.
BACKFILL = """
UPDATE recall_lines SET quantity_forwarded = COALESCE((
    SELECT SUM(s.quantity) FROM shipments s
    JOIN recall_consignees sender ON sender.id = recall_lines.consignee_id
    JOIN recall_consignees receiver ON receiver.instance_id = recall_lines.instance_id
                                   AND receiver.customer_id = s.customer_id
    WHERE s.from_customer_id = sender.customer_id AND s.product_lot_id = recall_lines.product_lot_id), 0)
"""


def upgrade():
    with op.batch_alter_table('recall_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quantity_forwarded', sa.Integer(), nullable=False, server_default='0'))
    op.execute(BACKFILL)
    op.execute("UPDATE recall_lines SET quantity_forwarded = quantity_shipped "
               "WHERE quantity_forwarded > quantity_shipped")


def downgrade():
    with op.batch_alter_table('recall_lines', schema=None) as batch_op:
        batch_op.drop_column('quantity_forwarded')
