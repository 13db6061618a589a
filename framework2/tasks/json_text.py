"""JSON from outside, made storable: no text a UTF-8 store or PostgreSQL cannot hold.

JSON may spell any code unit as an escape, so a valid document can hold a lone UTF-16 surrogate (``"\\ud800"``),
which no UTF-8 encoder accepts, or NUL (``"\\u0000"``), which PostgreSQL text refuses. Either one, copied into a
title or a quarantine reason, made the whole write fail, and with it every later run that read the same
document. ``loads`` replaces them with U+FFFD, the replacement character, so the text shows that something was
there. The scan is on the raw document and only documents that spell such an escape are walked.
"""

from __future__ import annotations

import json
import re
from typing import Any

# An escape of a surrogate or of NUL; a doubled backslash before it would be a literal "\u", which is rare enough
# that walking the document then costs nothing that matters.
_SUSPECT = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_OR_NUL = re.compile("[\ud800-\udfff\x00]")
REPLACEMENT = "\ufffd"


def clean_text(text: str, *, nul: bool = True) -> str:
    """``text`` with lone surrogates (and NUL unless ``nul`` is False) replaced by U+FFFD."""
    return (_SURROGATE_OR_NUL if nul else _SURROGATE).sub(REPLACEMENT, text)


def _walk(value: Any, nul: bool) -> Any:
    if isinstance(value, str):
        return clean_text(value, nul=nul)
    if isinstance(value, list):
        return [_walk(v, nul) for v in value]
    if isinstance(value, dict):
        return {clean_text(k, nul=nul): _walk(v, nul) for k, v in value.items()}
    return value


def loads(text: str, *, nul: bool = True, **options: Any) -> Any:
    """``json.loads`` whose strings hold no lone surrogate (and no NUL unless ``nul`` is False)."""
    document = json.loads(text, **options)
    return _walk(document, nul) if _SUSPECT.search(text) else document
