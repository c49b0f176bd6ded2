"""marshmallow fields every service's schemas use."""

from __future__ import annotations

from marshmallow import fields


class Text(fields.String):
    """A string without control characters: none belongs in a dossier, and NUL breaks PostgreSQL text."""

    default_error_messages = {"control": "must not contain control characters"}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in text):
            raise self.make_error("control")
        return text
