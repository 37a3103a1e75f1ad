"""Redacting secrets: values under secret-looking keys, and credentials that hide in URLs
(`http://user:KEY@host/v1`, `?api_key=...`).

Used wherever text may leave the process: the resolved config written to a run directory,
error lines, backend descriptions in results and reports. Import-light: the CLI uses it.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_KEY = re.compile(r"(api_?key|token|secret|password)$", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")
_URL_SECRET_PARAM = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|secret|password|sig)=)[^&\s#]+")


def redact_urls(text: str) -> str:
    """`text` with the credentials of any URL in it (`user:KEY@host`, `?api_key=...`) as ***."""
    return _URL_SECRET_PARAM.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))


def redact(data: Any) -> Any:
    """A copy of `data` with every secret-looking key's value replaced by "***" and URL
    credentials in every string redacted."""
    if isinstance(data, dict):
        return {k: ("***" if isinstance(k, str) and SECRET_KEY.search(k) and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(item) for item in data]
    return redact_urls(data) if isinstance(data, str) else data
