"""read markers: how far each user has read each conversation

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09

"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Plain ALTER TABLE, never batch mode: batch mode would copy `user` and drop the
# original, and with foreign keys on, dropping it deletes every row that refers to it.


def upgrade():
    op.add_column("contact", sa.Column("last_read_id", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("user", sa.Column("read_version", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_message_conversation_receiver", "message", ["connection_id", "receiver_id"])
    # What a client has fetched (or the owner wrote) counts as read; only messages still
    # waiting for delivery start out unread, rather than every conversation's whole past.
    op.execute(
        """
        UPDATE contact SET last_read_id = COALESCE((
            SELECT max(message.id) FROM message
            WHERE message.connection_id = contact.connection_id
              AND (message.receiver_id != contact.owner_id OR message.delivered)
        ), 0)
        """
    )


def downgrade():
    op.drop_index("ix_message_conversation_receiver", table_name="message")
    op.drop_column("user", "read_version")
    op.drop_column("contact", "last_read_id")
