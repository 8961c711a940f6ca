"""evidence guards: no TRUNCATE of the trail, append-only signatures and documents, a forward-only head

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:45:00.000000

"""
from alembic import op

from app.models.audit import DROP_EVIDENCE_GUARDS_SQL, install_evidence_guards

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    install_evidence_guards(op.get_bind())


def downgrade():
    for statement in DROP_EVIDENCE_GUARDS_SQL[op.get_bind().dialect.name]:
        op.execute(statement)
