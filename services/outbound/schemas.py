"""marshmallow schemas of the outbound service's API: the subscriptions (-> OpenAPI)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

UNIT_CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="not a unit code")
EVENT_TYPE = validate.Regexp(
    r"^vn\.motcua\.[a-z]+\.[a-z_]+$", error="not an event type (vn.motcua.dossier.received)"
)
SECRET = validate.Regexp(
    r"^whsec_[A-Za-z0-9+/=]{16,200}$", error="a Standard Webhooks secret: whsec_<base64>"
)


def _callback(**kwargs) -> fields.Url:
    return fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2000),
        metadata={
            "description": "where the events are POSTed; no loopback, private, link-local or metadata "
            "address unless the deployment allows it (WEBHOOK_ALLOWED_NETWORKS); redirects are not followed"
        },
        **kwargs,
    )


class ClientCredentialsSchema(Schema):
    """OAuth2 client credentials (RFC 6749 §4.4): the service asks the token endpoint for a bearer
    token (client_secret_basic), keeps it until shortly before it expires, and renews it once when the
    callback answers 401."""

    token_url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=2000),
        metadata={"description": "the token endpoint; the same address guard as the callback"},
    )
    client_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    client_secret = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=500),
        metadata={"description": "never shown again"},
    )
    scope = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


def _contact(value: str) -> None:
    """An e-mail address (notices go through the operator's mailer) or an http(s) URL (POSTed)."""
    if value.startswith(("http://", "https://")):
        fields.Url(schemes={"http", "https"}, require_tld=False).deserialize(value)
    else:
        fields.Email().deserialize(value)


class _Filters(Schema):
    event_types = fields.List(
        fields.String(validate=EVENT_TYPE), metadata={"description": "CloudEvent types; empty or absent: all"}
    )
    procedure = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Za-z0-9._-]{1,40}$"))
    field = fields.String(allow_none=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,59}$"))
    auth_header = fields.String(
        allow_none=True,
        load_only=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "sent as the callback's Authorization header (never shown again)"},
    )
    oauth2 = fields.Nested(
        ClientCredentialsSchema,
        allow_none=True,
        metadata={"description": "OAuth2 client credentials for the callback (instead of auth_header)"},
    )
    contact = fields.String(
        allow_none=True,
        validate=[validate.Length(max=2000), _contact],
        metadata={
            "description": "who is told, at most once a day, when a delivery is dead: an e-mail address "
            "(through the operator's mailer) or an http(s) URL (the notice is POSTed, signed)"
        },
    )

    @validates_schema
    def _one_authorization(self, data: dict, **kwargs) -> None:
        if data.get("auth_header") and data.get("oauth2"):
            raise ValidationError("an auth header or OAuth2 client credentials, not both", "oauth2")


class SubscriptionRequestSchema(_Filters):
    """A subscription: the callback, the unit whose subtree it follows (within the caller's jurisdiction)
    and the filters; ``secret`` signs the deliveries (generated and shown once when absent)."""

    callback_url = _callback(required=True)
    unit = fields.String(required=True, validate=UNIT_CODE)
    secret = fields.String(load_only=True, validate=SECRET)


class SubscriptionUpdateSchema(_Filters):
    """What to change; a secret rotation adds the new secret, then removes the old one."""

    callback_url = _callback()
    unit = fields.String(validate=UNIT_CODE)
    add_secret = fields.String(load_only=True, validate=SECRET)
    remove_secret = fields.String(load_only=True, validate=SECRET)
    active = fields.Boolean(
        metadata={"description": "false disables; true re-enables (after a test delivery)"}
    )

    @validates_schema
    def _something(self, data: dict, **kwargs) -> None:
        if not data:
            raise ValidationError("nothing to change", "_schema")


class SubscriptionSchema(Schema):
    id = fields.String()
    callback_url = fields.String()
    unit = fields.String()
    event_types = fields.List(fields.String())
    procedure = fields.String(allow_none=True)
    field = fields.String(allow_none=True)
    contact = fields.String(allow_none=True)
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    has_auth_header = fields.Function(lambda s: bool(s.auth_header))
    oauth2 = fields.Nested(ClientCredentialsSchema, allow_none=True)
    secrets = fields.Function(lambda s: len(s.secrets), metadata={"description": "how many secrets sign"})


class CreatedSubscriptionSchema(SubscriptionSchema):
    secret = fields.String(allow_none=True, metadata={"description": "the generated secret, shown this once"})


class SubscriptionPageSchema(Schema):
    count = fields.Integer()
    results = fields.List(fields.Nested(SubscriptionSchema))


class AttemptSchema(Schema):
    at = fields.AwareDateTime()
    status = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    seconds = fields.Float()


class DeliverySchema(Schema):
    id = fields.Integer()
    event_id = fields.String(metadata={"description": "the CloudEvent id, also the webhook-id"})
    event_type = fields.String()
    subject = fields.String()
    sequence = fields.Integer()
    state = fields.String(metadata={"description": "pending, delivered, dead (every try failed), gone (410)"})
    last_error = fields.String(allow_none=True, metadata={"description": "the last try's error, if any"})
    enqueued_at = fields.AwareDateTime()
    delivered_at = fields.AwareDateTime(allow_none=True)
    attempts = fields.List(fields.Nested(AttemptSchema))


class DeliveryLogSchema(Schema):
    results = fields.List(fields.Nested(DeliverySchema))


class RedeliveryRequestSchema(Schema):
    delivery_id = fields.Integer(validate=validate.Range(min=1))
    from_ = fields.AwareDateTime(data_key="from")
    to = fields.AwareDateTime()

    @validates_schema
    def _one_or_a_range(self, data: dict, **kwargs) -> None:
        ranged = "from_" in data or "to" in data
        if ("delivery_id" in data) == ranged:
            raise ValidationError("name a delivery_id, or a range: from and to", "_schema")
        if ranged and not ("from_" in data and "to" in data and data["from_"] < data["to"]):
            raise ValidationError("from must come before to", "to")


class RedeliverySchema(Schema):
    redelivered = fields.Integer()
