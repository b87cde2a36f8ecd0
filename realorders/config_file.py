"""The config file: which one is read, and its TOML as raw values keyed by setting name.

Split from :mod:`realorders.config`, which converts and checks the values: this
module only knows the file's shapes (top-level keys, one ``[realorders]``
table, ``[kafka]`` / ``[redis]`` groups) and reports where a key is wrong.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from realorders.errors import UsageError

__all__ = ["DEFAULT_FILE", "find_config_file", "read_config_file"]

DEFAULT_FILE = Path("realorders.toml")
_GROUPS = ("kafka", "redis")  # [kafka] bootstrap = … is kafka_bootstrap
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def find_config_file(env: Mapping[str, str], given: Path | None) -> Path | None:
    """``given`` (--config), else $REALORDERS_CONFIG, else ./realorders.toml if it exists."""
    if given is not None:
        if not given.exists():
            raise UsageError(f"config file {given} does not exist")
        return given
    from_env = env.get("REALORDERS_CONFIG", "")
    if from_env:
        if not Path(from_env).exists():
            raise UsageError(f"REALORDERS_CONFIG: config file {from_env} does not exist")
        return Path(from_env)
    return DEFAULT_FILE if DEFAULT_FILE.exists() else None


def read_config_file(path: Path, names: Sequence[str]) -> dict[str, tuple[object, str]]:
    """Setting name -> (raw value, key as written); ``names`` are the settings that exist."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_WHERE.search(message)
        if where is None:
            raise UsageError(f"{path}: invalid TOML: {message}") from None
        reason = message[: where.start()]
        raise UsageError(f"{path}:{where[1]}: invalid TOML: {reason} (column {where[2]})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    prefix = ""
    if "realorders" in data:
        extra = sorted(set(data) - {"realorders"})
        if extra:
            raise UsageError(
                f"{path}: unknown key {extra[0]!r} (with a [realorders] table, "
                "every setting goes in it)"
            )
        data, prefix = data["realorders"], "realorders."
        if not isinstance(data, dict):
            raise UsageError(f"{path}: realorders: expected a table of settings")
    found: dict[str, tuple[object, str]] = {}
    for key, value in data.items():
        if key in _GROUPS:
            if not isinstance(value, dict):
                raise UsageError(f"{path}: {prefix}{key}: expected a table ([{key}])")
            for sub, sub_value in value.items():
                _take(found, names, path, f"{key}_{sub}", f"{prefix}{key}.{sub}", sub_value)
        else:
            _take(found, names, path, key, prefix + key, value)
    return found


def _take(
    found: dict[str, tuple[object, str]],
    names: Sequence[str],
    path: Path,
    name: str,
    key: str,
    value: object,
) -> None:
    if name not in names:
        raise UsageError(f"{path}: unknown key {key!r}{_did_you_mean(name, key, names)}")
    if name in found:
        raise UsageError(f"{path}: {name} is set twice (as {found[name][1]} and {key})")
    found[name] = (value, key)


def _did_you_mean(name: str, key: str, names: Sequence[str]) -> str:
    group = key.removeprefix("realorders.").partition(".")[0] if "." in key else ""
    if group in _GROUPS:  # suggest in the shape the user wrote: [kafka] bootstrap
        options = [n.removeprefix(f"{group}_") for n in names if n.startswith(f"{group}_")]
        close = difflib.get_close_matches(name.removeprefix(f"{group}_"), options, n=1)
    else:
        close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
