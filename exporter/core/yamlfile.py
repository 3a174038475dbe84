"""Strict YAML reading for every file the exporter is configured with (config, web config).

PyYAML's safe loader on its own lets through what an operator never means: a duplicate key
in a mapping (the last one silently wins), aliases that expand a few hundred bytes into
billions of nodes (an "alias bomb"), nesting deep enough to exhaust the stack, and, when
the caller decodes loosely, bytes that are not UTF-8. Each becomes one ConfigError line
naming the file and where in it, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.core.configcheck import brief
from exporter.core.errors import ConfigError

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_NODES = 1_000_000  # after aliases are expanded: a long `ids` list fits, a 9^9 bomb does not
MAX_DEPTH = 64
MERGE_TAG = "tag:yaml.org,2002:merge"


class _TooBig(Exception):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and documents that expand past MAX_NODES."""

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set(), 0)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # unhashable keys and merges are the base class's to judge
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {brief(key)} in one mapping (each key at most once)",
                    key_node.start_mark,
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Node, memo: dict[int, int], open_nodes: set[int], depth: int) -> int:
    """Nodes in the document once every alias is expanded; raises _TooBig past the bounds."""
    if depth > MAX_DEPTH:
        raise _TooBig(f"nested deeper than {MAX_DEPTH} levels")
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_nodes:
        raise _TooBig("an alias refers to a node that contains it (a recursive structure)")
    open_nodes.add(key)
    size = 1
    if isinstance(node, SequenceNode):
        size += sum(_expanded_size(child, memo, open_nodes, depth + 1) for child in node.value)
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, open_nodes, depth + 1) + _expanded_size(v, memo, open_nodes, depth + 1)
    open_nodes.discard(key)
    if size > MAX_NODES:
        raise _TooBig(f"expands past {MAX_NODES:,} values once aliases are expanded (an alias bomb?)")
    memo[key] = size
    return size


def load(path: str | Path) -> Any:
    """The one YAML document in `path`; raises ConfigError with one line naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err.strerror or err}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; expected a config file"])
    return loads(data, str(path))


def loads(data: bytes | str, path: str) -> Any:
    """Parse `data` (UTF-8 bytes or text) as named by `path` in errors."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError([f"{path}: byte {err.start}: not UTF-8 (expected a UTF-8 text file)"]) from None
    else:
        text = data
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _TooBig as err:
        raise ConfigError([f"{path}: {err}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: nested deeper than {MAX_DEPTH} levels"]) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
        raise ConfigError([f"{path}:{where} not valid YAML: {_one_line(err.problem or err.context or '')}"]) from None
    except yaml.reader.ReaderError as err:
        raise ConfigError(
            [f"{path}: character {err.position}: not valid YAML: {_one_line(err.reason)} (character {err.character!r})"]
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: not valid YAML: {_one_line(str(err))}"]) from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]
