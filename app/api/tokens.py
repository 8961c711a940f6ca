"""/api/v1/tokens: a user lists and revokes their own API tokens; admins list and revoke everyone's. Tokens are
issued on the API tokens page or with `flask users token NAME`, never through the API (a stolen token cannot
mint a successor that outlives its revocation)."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.api.auth import api_user, authenticate_request
from app.services import users

blp = Blueprint("api_tokens", __name__, url_prefix="/api/v1", description="API tokens: list and revoke")
blp.before_request(authenticate_request)


class TokenSchema(Schema):
    id = fields.Int()
    user = fields.Function(lambda t: t.user.username)
    name = fields.Str()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True, metadata={"description": "null: the token never expires"})
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    state = fields.Str(metadata={"enum": ["active", "expired", "revoked"]})


@blp.route("/tokens")
@blp.response(200, TokenSchema(many=True))
def list_tokens():
    """List your API tokens, newest first (an admin: every user's)."""
    user = api_user()
    return users.list_tokens(user, everyone=user.has_role("admin"))


@blp.route("/tokens/<int:token_id>", methods=["DELETE"])
@blp.response(200, TokenSchema)
@blp.alt_response(404, description="no such token, or another user's")
def revoke_token(token_id: int):
    """Revoke one of your tokens (an admin: anyone's); it stops working at once. 404 for another user's token."""
    return users.revoke_token(token_id, api_user())
