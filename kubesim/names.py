"""Object names: the DNS-1123 rules, their exact error texts, and ``generateName``.

Names are where a real apiserver and a naive fake most often disagree, so the
messages follow apimachinery's ``pkg/util/validation/validation.go`` word for word
(including the doubled space its ``RegexError`` puts after the first example), and
the suffix alphabet is the one of ``pkg/util/rand`` used by
``names.SimpleNameGenerator`` (no vowels, no confusable digits).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from kubesim.statuses import INVALID, REQUIRED, FieldError

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + r"(\." + _LABEL_FMT + ")*"
_LABEL_RE = re.compile(f"^{_LABEL_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}$")
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LEN = 5
_MAX_PREFIX = DNS1123_SUBDOMAIN_MAX - _SUFFIX_LEN


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def dns1123_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > DNS1123_LABEL_MAX:
        errors.append(max_len_error(DNS1123_LABEL_MAX))
    if not _LABEL_RE.match(value):
        if _SUBDOMAIN_RE.match(value):
            errors.append("must not contain dots")
        else:
            errors.append(_regex_error(_LABEL_MSG, _LABEL_FMT, "my-name", "123-abc"))
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _SUBDOMAIN_RE.match(value):
        errors.append(_regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com"))
    return errors


def label_value_errors(value: str) -> list[str]:
    """Only the length rule of ``IsValidLabelValue``: names are already DNS-safe."""
    return [max_len_error(DNS1123_LABEL_MAX)] if len(value) > DNS1123_LABEL_MAX else []


def validate_object_names(
    name: str, generate_name: str, *, label: bool, path: str = "metadata"
) -> list[FieldError]:
    """``ValidateObjectMetaAccessor``'s name part; ``label`` picks the label rule."""
    check = dns1123_label_errors if label else dns1123_subdomain_errors
    errors = []
    if generate_name:
        # prefix validation ignores one trailing dash (maskTrailingDash)
        prefix = (
            generate_name[:-1]
            if len(generate_name) > 1 and generate_name.endswith("-")
            else generate_name
        )
        errors += [
            FieldError(INVALID, f"{path}.generateName", generate_name, m) for m in check(prefix)
        ]
    if not name:
        errors.append(
            FieldError(REQUIRED, f"{path}.name", detail="name or generateName is required")
        )
    else:
        errors += [FieldError(INVALID, f"{path}.name", name, m) for m in check(name)]
    return errors


def generate_unique(prefix: str, taken: Callable[[str], bool], attempts: int = 8) -> str:
    """Retry generation on collisions, as the apiserver does since 1.30 (RetryGenerateName)."""
    name = generate(prefix)
    for _ in range(attempts - 1):
        if not taken(name):
            break
        name = generate(prefix)
    return name


def generate(prefix: str) -> str:
    """``SimpleNameGenerator.GenerateName``: prefix (trimmed) plus 5 random characters."""
    prefix = prefix[:_MAX_PREFIX]
    suffix = "".join(random.choices(_SUFFIX_ALPHABET, k=_SUFFIX_LEN))  # noqa: S311
    return prefix + suffix
