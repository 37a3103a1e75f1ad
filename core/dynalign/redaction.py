"""Redacting credentials that hide in URLs (`http://user:KEY@host/v1`, `?api_key=...`).

Used wherever text may leave the process: the resolved config written to a run directory,
error lines, backend descriptions in results and reports. Import-light: the CLI uses it.
"""

from __future__ import annotations

import re

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")
_URL_SECRET_PARAM = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|secret|password|sig)=)[^&\s#]+")


def redact_urls(text: str) -> str:
    """`text` with the credentials of any URL in it (`user:KEY@host`, `?api_key=...`) as ***."""
    return _URL_SECRET_PARAM.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))
