"""``Ref::name`` parameter substitution (user guide, "Parameters"; spec 3.2, checklist E.46).

Owns the merge of parameter values (BatchJob ``spec.parameters`` take precedence over the
JobDefinition's ``parameters`` defaults) and the substitution itself.

Tokenization (a compatibility choice; the guide only shows whole-element tokens such as
``["ffmpeg", "-i", "Ref::inputfile", "-c", "Ref::codec"]``):

- A placeholder is ``Ref::`` followed by the *longest* run of name characters
  ``[A-Za-z0-9_-]`` (maximal munch). It is substituted wherever it occurs in a string: as a whole
  element (``"Ref::codec"``) or embedded (``"render --frame Ref::frame"``, ``"s3://b/Ref::key.png"``).
- The token is looked up *exactly*: ``Ref::ab`` is the parameter ``ab``, never ``a`` followed by
  ``b``. An unknown token is left unchanged, character for character (so ``Ref::ab`` with only
  ``a`` defined stays ``Ref::ab``). To put text right after a value, end the token with a
  character outside the name set (``Ref::frame.png``, ``Ref::name/``, ``Ref::x=1``).
- Substitution is a single pass: a value that itself contains ``Ref::...`` is inserted as is and
  not expanded again. ``Ref::`` with no name after it is left alone.
- Only ``command`` (and, for pod templates, ``args``) lists are substituted, as in AWS Batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

REF_PREFIX = "Ref::"
NAME_CHARS = "A-Za-z0-9_-"
_TOKEN = re.compile(rf"Ref::([{NAME_CHARS}]+)")


def merge_parameters(
    definition_parameters: Mapping[str, object] | None, job_parameters: Mapping[str, object] | None
) -> dict[str, str]:
    """Definition defaults overlaid by the job's parameters (job wins); values as strings."""
    merged: dict[str, str] = {}
    for source in (definition_parameters or {}, job_parameters or {}):
        for key, value in source.items():
            merged[str(key)] = "" if value is None else str(value)
    return merged


def substitute(value: str, parameters: Mapping[str, str]) -> str:
    """Replace every known ``Ref::name`` token in ``value`` (see module docstring)."""
    if REF_PREFIX not in value:
        return value

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        return parameters[name] if name in parameters else match.group(0)

    return _TOKEN.sub(repl, value)


def substitute_all(values: Sequence[str] | None, parameters: Mapping[str, str]) -> list[str] | None:
    """``substitute`` over a command/args list; ``None`` stays ``None``."""
    if values is None:
        return None
    return [substitute(str(v), parameters) for v in values]


def references(values: Iterable[str] | None) -> set[str]:
    """The parameter names referenced by ``Ref::`` tokens in ``values``."""
    names: set[str] = set()
    for v in values or ():
        names.update(_TOKEN.findall(str(v)))
    return names


def unresolved(values: Iterable[str] | None, parameters: Mapping[str, str]) -> set[str]:
    """Referenced names with no value (they will stay literally in the command)."""
    return {n for n in references(values) if n not in parameters}
