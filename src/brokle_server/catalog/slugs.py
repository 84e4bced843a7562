"""URL-safe slugs derived from display names."""

from __future__ import annotations

import re
import unicodedata

from brokle_server.errors import ValidationFailed

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    if not slug:
        raise ValidationFailed(
            "Cannot derive a slug from this name; pass an explicit slug",
            details=[{"field": "slug", "message": "required for this name"}],
        )
    return slug


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise ValidationFailed(
            "Slug must be 1-64 lowercase letters, digits or dashes, not starting or ending "
            "with a dash",
            details=[{"field": "slug", "message": "invalid format"}],
        )
    return slug
