"""Reading and checking services/notifier/templates.yaml (the messages as data, like the procedure
catalogue): every kind, every channel, the subject, known placeholders only, and no SMS longer than one
segment with the longest values. A bad file stops the service at start with what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from services.notifier.domain.messages import (
    KINDS,
    LONGEST,
    PLACEHOLDERS,
    SMS,
    SMS_PLACEHOLDERS,
    Kind,
    Template,
    placeholders,
    render,
    sms_limit,
)
from shared.vocabulary import NOTIFICATION_CHANNELS

TEMPLATES_FILE = Path(__file__).with_name("templates.yaml")


class TemplateError(ValueError):
    """The templates file is not usable; the message says where and why."""


def sms_length(template: Template, *, unicode_sms: bool) -> int:
    """How long the SMS of ``template`` is with the longest values of its placeholders."""
    return len(render(template, SMS, LONGEST, unicode_sms=unicode_sms))


def parse(document: Mapping[str, Any], *, source: str = "templates") -> dict[Kind, Template]:
    problems = []
    missing = sorted(set(KINDS) - set(document))
    unknown = sorted(set(document) - set(KINDS))
    if missing:
        problems.append(f"no template for {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown kinds {', '.join(unknown)} (known: {', '.join(KINDS)})")
    found: dict[Kind, Template] = {}
    for name in set(KINDS) & set(document):
        entry = document[name] or {}
        texts = {channel: entry.get(channel) for channel in NOTIFICATION_CHANNELS}
        for channel, text in texts.items():
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{name}.{channel}: missing")
                continue
            allowed = SMS_PLACEHOLDERS if channel == SMS else PLACEHOLDERS
            if stray := placeholders(text) - allowed:
                problems.append(f"{name}.{channel}: unknown placeholders {sorted(stray)}")
        if not isinstance(entry.get("subject"), str) or not entry["subject"].strip():
            problems.append(f"{name}.subject: missing")
        elif stray := placeholders(entry["subject"]) - SMS_PLACEHOLDERS:
            problems.append(f"{name}.subject: unknown placeholders {sorted(stray)}")
        if problems:
            continue
        template = Template(Kind(name), texts, entry["subject"], bool(entry.get("urgent", False)))
        for unicode_sms in (False, True):
            length, limit = sms_length(template, unicode_sms=unicode_sms), sms_limit(unicode_sms)
            if length > limit:
                alphabet = "Unicode" if unicode_sms else "unaccented"
                problems.append(f"{name}.sms: {length} characters {alphabet}, over {limit}")
        found[template.kind] = template
    if problems:
        raise TemplateError(f"{source}: " + "; ".join(sorted(problems)))
    return found


def load_templates(path: Path = TEMPLATES_FILE) -> dict[Kind, Template]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path.name}: {exc}") from exc
    if not isinstance(document, dict):
        raise TemplateError(f"{path.name}: expected a mapping of kinds")
    return parse(document, source=path.name)
