"""A small resolver of the kustomizations under deploy/kubernetes/, for the tests: `resources`
(files and directories), `configMapGenerator` from files, and `patches` that are either a
resource deletion (`$patch: delete`) or a JSON patch (RFC 6902) on a target kind and name.
That is all the shipped kustomizations use; anything else is refused, so a new feature in them
fails the tests until the resolver (or a real kustomize) handles it. ConfigMap names keep no
content hash, which only kustomize adds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "patches"}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def build(directory: Path) -> list[dict[str, Any]]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(k) <= KNOWN_KEYS, f"{directory}: the test resolver does not handle {set(k) - KNOWN_KEYS}"
    assert k["kind"] == "Kustomization"
    docs: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = directory / entry
        assert path.exists(), f"{directory}: resource {entry} does not exist"
        docs += build(path) if path.is_dir() else load_docs(path)
    for gen in k.get("configMapGenerator", []):
        data = {}
        for item in gen["files"]:
            key, _, source = item.rpartition("=")
            path = directory / source
            assert path.is_file(), f"{directory}: configMapGenerator file {source} does not exist"
            data[key or path.name] = path.read_text(encoding="utf-8")
        labels = gen.get("options", {}).get("labels", {})
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"], "labels": labels}, "data": data}
        )
    for patch in k.get("patches", []):
        docs = apply_patch(docs, patch)
    return docs


def _matches(doc: dict[str, Any], kind: str, name: str) -> bool:
    return bool(doc["kind"] == kind and doc["metadata"]["name"] == name)


def apply_patch(docs: list[dict[str, Any]], patch: dict[str, Any]) -> list[dict[str, Any]]:
    body = yaml.safe_load(patch["patch"])
    if isinstance(body, dict):
        assert body.pop("$patch", None) == "delete", f"unsupported strategic merge patch: {body}"
        kind, name = body["kind"], body["metadata"]["name"]
        assert any(_matches(d, kind, name) for d in docs), f"nothing to delete: {kind}/{name}"
        return [d for d in docs if not _matches(d, kind, name)]
    target = patch["target"]
    hits = [d for d in docs if _matches(d, target["kind"], target["name"])]
    assert len(hits) == 1, f"patch target {target} matches {len(hits)} resources"
    patched = copy.deepcopy(hits[0])
    for op in body:
        json_patch(patched, op)
    return [patched if d is hits[0] else d for d in docs]


def json_patch(doc: Any, op: dict[str, Any]) -> None:
    *parents, last = op["path"].lstrip("/").split("/")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        if op["op"] == "add":
            node.insert(len(node) if last == "-" else int(last), op["value"])
            return
        assert last != "-" and int(last) < len(node), op["path"]
        if op["op"] == "replace":
            node[int(last)] = op["value"]
        else:
            assert op["op"] == "remove", op
            del node[int(last)]
        return
    if op["op"] in ("replace", "remove"):
        assert last in node, f"{op['op']} of a missing member {op['path']}"
    if op["op"] == "remove":
        del node[last]
    else:
        assert op["op"] in ("add", "replace"), op
        node[last] = op["value"]
