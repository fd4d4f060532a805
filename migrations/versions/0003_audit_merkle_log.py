"""audit log as a Merkle tree: leaf hashes, head, subtree cache, signed checkpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 22:32:43.267802

Existing events are renumbered 0, 1, 2, ... in their old order (a PostgreSQL sequence leaves gaps
after rollbacks; the log must not) and get their leaf hashes. The leaf format is inlined here on
purpose: a migration must keep producing what it produced the day it was written.
"""
import hashlib
from datetime import UTC

import rfc8785
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _leaf_hash(seq, created_at, type_, actor, payload_hash):
    # docs/audit.md, "Leaf serialization", version 1.
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    time = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = rfc8785.dumps(
        {"actor": actor, "payload_hash": payload_hash, "seq": seq, "time": time,
         "type": type_, "v": 1}
    )
    return hashlib.sha256(b"\x00" + body).hexdigest()


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_audit_checkpoints'))
    )
    op.create_table('audit_log_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_log_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log_head'))
    )
    op.create_table('audit_merkle_nodes',
    sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_audit_merkle_nodes'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leaf_hash', sa.String(length=64), nullable=True))

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Sequence numbers are assigned under the log head's lock from now on.
        op.execute("ALTER TABLE audit_events ALTER COLUMN seq DROP DEFAULT")
        op.execute("DROP SEQUENCE IF EXISTS audit_events_seq_seq")

    events = sa.table(
        "audit_events",
        sa.column("seq", sa.BigInteger()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("type", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("payload_hash", sa.String()),
        sa.column("leaf_hash", sa.String()),
    )
    old = [row.seq for row in bind.execute(sa.select(events.c.seq).order_by(events.c.seq))]
    if old != list(range(len(old))):
        # Two steps through negative numbers: the primary key stays unique at every row.
        for new_seq, old_seq in enumerate(old):
            bind.execute(
                events.update().where(events.c.seq == old_seq).values(seq=-1 - new_seq)
            )
        bind.execute(events.update().where(events.c.seq < 0).values(seq=-1 - events.c.seq))
    rows = bind.execute(
        sa.select(
            events.c.seq, events.c.created_at, events.c.type, events.c.actor,
            events.c.payload_hash,
        ).order_by(events.c.seq)
    ).all()
    for row in rows:
        bind.execute(
            events.update()
            .where(events.c.seq == row.seq)
            .values(leaf_hash=_leaf_hash(
                row.seq, row.created_at, row.type, row.actor, row.payload_hash
            ))
        )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('leaf_hash', existing_type=sa.String(length=64), nullable=False)

    head = sa.table("audit_log_head", sa.column("id", sa.Integer()),
                    sa.column("size", sa.BigInteger()))
    bind.execute(head.insert().values(id=1, size=len(rows)))


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('leaf_hash')

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE audit_events_seq_seq OWNED BY audit_events.seq")
        op.execute(
            "SELECT setval('audit_events_seq_seq', "
            "COALESCE((SELECT max(seq) + 1 FROM audit_events), 1), false)"
        )
        op.execute(
            "ALTER TABLE audit_events ALTER COLUMN seq "
            "SET DEFAULT nextval('audit_events_seq_seq')"
        )
    op.drop_table('audit_merkle_nodes')
    op.drop_table('audit_log_head')
    op.drop_table('audit_checkpoints')
