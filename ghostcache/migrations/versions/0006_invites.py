"""invites: single-use registration links (GHOSTCACHE_INVITE_ONLY), kept as token hashes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20

"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# A new table only: nothing existing is copied or altered (see 0003 on batch mode).


def upgrade():
    op.create_table(
        "invite",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column(
            "creator_id",
            sa.Integer(),
            sa.ForeignKey("user.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_invite_token_hash"),
    )
    op.create_index("ix_invite_creator_id", "invite", ["creator_id"])
    op.create_index("ix_invite_expires_at", "invite", ["expires_at"])


def downgrade():
    op.drop_index("ix_invite_expires_at", table_name="invite")
    op.drop_index("ix_invite_creator_id", table_name="invite")
    op.drop_table("invite")
