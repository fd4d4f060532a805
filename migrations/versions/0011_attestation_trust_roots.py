"""attestations: every trust root that verifies an attestation, not only the first

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-03 18:00:00

A keyless bundle whose CA is in several configured roots (a custom trust/<name>.json sharing
Fulcio with public-good) is recorded under all of them, so a policy naming any of those roots
sees it. Rows stored before this revision carry only ``trust_root``; readers fall back to it.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attestations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trust_roots', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attestations', schema=None) as batch_op:
        batch_op.drop_column('trust_roots')
