"""end-to-end encryption (GCE1): identities, backups, key events, E2EE conversations

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-16

"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Plain ALTER TABLE ... ADD COLUMN for the nullable and defaulted columns, never batch
# mode (see 0003): copying `user` or `connection` would cascade deletions on SQLite.


def _user_key(primary_key: bool = False) -> sa.Column:
    return sa.Column(
        "user_id",
        sa.Integer(),
        sa.ForeignKey("user.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade():
    op.create_table(
        "identity",
        _user_key(primary_key=True),
        sa.Column("kid", sa.String(32), nullable=False),
        sa.Column("pub", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "e2ee_backup",
        _user_key(primary_key=True),
        sa.Column("ctr", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("iv", sa.String(32), nullable=False),
        sa.Column("blob", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "key_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        _user_key(),
        sa.Column("old_kid", sa.String(32), nullable=False),
        sa.Column("new_kid", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_key_event_user_id", "key_event", ["user_id"])
    op.add_column("connection", sa.Column("e2ee_since", sa.DateTime(), nullable=True))
    op.add_column("message", sa.Column("envelope", sa.Text(), nullable=True))
    op.add_column("user", sa.Column("e2ee_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    op.drop_column("user", "e2ee_version")
    op.drop_column("message", "envelope")
    op.drop_column("connection", "e2ee_since")
    op.drop_index("ix_key_event_user_id", table_name="key_event")
    op.drop_table("key_event")
    op.drop_table("e2ee_backup")
    op.drop_table("identity")
