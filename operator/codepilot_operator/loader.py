"""Parse CodePilot manifests from YAML text into typed objects, or into one clear line per problem.

Users meet these messages in the CLI and in the operator's Degraded condition, so every problem names
the field path it concerns (``spec.runtime.gpus: ...``) and never carries a traceback.

The text is untrusted: what one document may cost is bounded before it is paid. Its size (the API
server's own request limit), its nesting depth (PyYAML composes recursively) and its node count with
aliases expanded (a 400-byte "billion laughs" file is 387 million nodes once anything walks it) are
capped before anything is built from it, and no message formats a whole value. Small texts are composed
by libyaml and built as plain data while counting; anything unusual goes to PyYAML's composer with the
bounds counted as it composes, which then decides (see _LibyamlComposerLoader).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from codepilot_operator.api import API_VERSION, KIND, CodePilot
from codepilot_operator.api.fields import preview

# The API server refuses request bodies above 3 MiB; a larger file cannot be a CodePilot to apply.
MAX_MANIFEST_BYTES = 3 * 1024 * 1024
# A CodePilot is 7 levels deep; 64 leaves room for any annotation and stays far from Python's stack.
MAX_DEPTH = 64
# A CodePilot has a few hundred nodes; a stream of many stays well below this, a bomb does not.
MAX_NODES = 100_000
MAX_PROBLEMS = 20
_MERGE_TAG = "tag:yaml.org,2002:merge"


# Texts up to this size are composed by libyaml before the bounds are checked (see
# _LibyamlComposerLoader); a stream of some 350 CodePilots, at most ~256k nodes, tens of MB at worst.
_COMPOSED_IN_C_BYTES = 256 * 1024


class _BeyondBounds(Exception):
    """libyaml composed something past a bound; the bounded composer reads the text instead."""


class InvalidCodePilot(ValueError):
    """The input is not a CodePilot we can serve; ``problems`` holds one message per field."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class _Bounds(Composer, SafeConstructor):
    """Composition that counts what it composes, and construction that refuses duplicate keys.

    Every composed node costs one; an alias costs the size its anchor had once expanded, so the count is
    what a consumer walking the data would meet. Recursive aliases are refused outright: JSON, and so
    the API server, cannot hold a cycle. Mixed into a loader ahead of PyYAML's Composer, so the
    composer's recursion is the one that counts (libyaml's own composer would not).
    """

    peek_event: Callable[[], Any]  # from the parser it is mixed with

    def _reset_bounds(self) -> None:
        self._depth = 0
        self._nodes = 0
        self._expanded: dict[int, int] = {}  # id(anchored node) -> nodes it stands for, once complete

    def _spend(self, count: int, mark: Any) -> None:
        self._nodes += count
        if self._nodes > MAX_NODES:
            raise ComposerError(None, None, f"more than {MAX_NODES} nodes once aliases are expanded", mark)

    def compose_document(self) -> Any:
        self._expanded.clear()  # anchors are per document; ids of freed nodes may be reused
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._expanded.get(id(target))
                if size is None:
                    raise ComposerError(
                        None,
                        None,
                        f"alias *{preview(event.anchor)[1:-1]} refers to a node that contains it",
                        mark,
                    )
                self._spend(size, mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        before = self._nodes
        self._spend(1, event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._expanded[id(node)] = self._nodes - before
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # int() of 5000 digits, a 30th of February
            reason = str(exc).split(":")[0][:80]
            raise ConstructorError(None, None, f"cannot read this value: {reason}", node.start_mark) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # keys merged from `<<: *base` may be overridden, as YAML specifies
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: SafeConstructor reports it
                if first is not key_node.start_mark:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {preview(key)} (first at line {first.line + 1})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep)


class _PurePythonLoader(_Bounds, yaml.SafeLoader):
    """The bounded loader on PyYAML's pure-Python scanner, for installs without libyaml."""

    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._reset_bounds()


try:
    from yaml._yaml import CParser, get_version
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _BoundedLoader: type[Any] = _PurePythonLoader
    _ComposedInC: type[Any] | None = None
else:

    class _LibyamlLoader(_Bounds, CParser, Resolver):
        """The same bounds over libyaml's scanner and parser, where pure-Python PyYAML spends most of
        its time. libyaml yields the same events, and PyYAML's composer (ahead of libyaml's in the MRO)
        still composes them, so every node is counted as above."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._reset_bounds()

    class _LibyamlComposerLoader(CParser, Resolver):
        """libyaml's own composer, then plain data built from its node graph while counting it: PyYAML
        composing in Python and its general constructor were most of the time `codepilot render`
        spent reading a manifest.

        Composing first is safe only because what libyaml may build is bounded beforehand: it
        refuses nesting deeper than 1000 itself (since 0.2.6, so its recursion cannot exhaust the C
        stack), aliases share nodes instead of copying them, and it is given texts of at most
        ``_COMPOSED_IN_C_BYTES`` (about that many nodes at worst). The build counts nodes as
        :class:`_Bounds` does (an alias costs the size of what it refers to, depth is checked where
        a node is first met, a cycle is refused by its depth) and knows only JSON-like data: strings,
        integers, floats, booleans, null, sequences, mappings with distinct hashable keys. Anything
        else (a timestamp, a merge key, a custom tag, a duplicate key) and anything past a bound
        hands the text to :class:`_LibyamlLoader`, which decides: answers and messages are the same
        on both paths.
        """

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Resolver.__init__(self)
            self._nodes = 0
            self._built: dict[int, tuple[Any, int]] = {}  # id(collection) -> (data, nodes it stands for)

        def check_data(self) -> bool:
            return bool(self.check_node())

        def get_data(self) -> Any:
            self._built.clear()  # anchors are per document; ids of freed nodes may be reused
            return self._build(self.get_node(), 1)

        def _build(self, node: Any, depth: int) -> Any:
            self._nodes += 1
            if depth > MAX_DEPTH or self._nodes > MAX_NODES:
                raise _BeyondBounds
            kind = type(node)
            if kind is yaml.ScalarNode:
                if node.tag == _STR_TAG:
                    return node.value
                construct = _SCALAR_CONSTRUCTORS.get(node.tag)
                if construct is None:
                    raise _BeyondBounds
                return construct(node)
            known = self._built.get(id(node))
            if known is not None:  # an alias: the same object, as PyYAML gives it
                self._nodes += known[1] - 1
                if self._nodes > MAX_NODES:
                    raise _BeyondBounds
                return known[0]
            before = self._nodes - 1
            data: Any
            if kind is yaml.MappingNode and node.tag == _MAP_TAG:
                data = {}
                for key_node, value_node in node.value:
                    key = self._build(key_node, depth + 1)
                    if type(key) not in _KEY_TYPES or key in data:
                        raise _BeyondBounds
                    data[key] = self._build(value_node, depth + 1)
            elif kind is yaml.SequenceNode and node.tag == _SEQ_TAG:
                data = [self._build(item, depth + 1) for item in node.value]
            else:
                raise _BeyondBounds
            self._built[id(node)] = (data, self._nodes - before)
            return data

    _SAFE = SafeConstructor()
    _SCALAR_CONSTRUCTORS: dict[str, Callable[[Any], Any]] = {
        "tag:yaml.org,2002:int": _SAFE.construct_yaml_int,
        "tag:yaml.org,2002:float": _SAFE.construct_yaml_float,
        "tag:yaml.org,2002:bool": _SAFE.construct_yaml_bool,
        "tag:yaml.org,2002:null": _SAFE.construct_yaml_null,
    }
    _STR_TAG, _MAP_TAG, _SEQ_TAG = (f"tag:yaml.org,2002:{name}" for name in ("str", "map", "seq"))
    _KEY_TYPES = (str, int, float, bool, type(None))
    _BoundedLoader = _LibyamlLoader
    _ComposedInC = _LibyamlComposerLoader if get_version() >= (0, 2, 6) else None


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if len(part) <= 60 else part[:60] + "..."  # a key is user input too
            out += f".{name}" if out else name
    return out or "(root)"


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _capped(problems: list[str]) -> list[str]:
    """A document with ten thousand wrong keys gets a readable answer, not ten thousand lines."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]


def validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        message = _message(dict(error))
        if len(loc) >= 2 and loc[-1] == "[key]":  # a map key is wrong, not the value under it
            message = f"key {preview(loc[-2])}: {message}"
            loc = loc[:-2]
        problems.append(f"{_path(loc)}: {message}")
    return _capped(problems)


def parse_codepilot(document: Any) -> CodePilot:
    """One manifest (a dict from YAML or from the API server) into a CodePilot."""
    if not isinstance(document, dict):
        raise InvalidCodePilot([f"(root): expected a mapping, got {type(document).__name__}"])
    problems = []
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind != KIND:
        problems.append(f"kind: expected {KIND}, got {preview(kind)}")
    if api_version != API_VERSION:
        problems.append(f"apiVersion: expected {API_VERSION}, got {preview(api_version)}")
    if problems:
        raise InvalidCodePilot(problems)
    try:
        return CodePilot.model_validate(document)
    except ValidationError as exc:
        raise InvalidCodePilot(validation_problems(exc)) from None


def too_large(source: str) -> str:
    limit = f"{MAX_MANIFEST_BYTES // 2**20} MiB"
    return f"{source}: larger than {limit} (the API server's request limit); not a CodePilot"


def _documents(text: str, loader_class: type[Any]) -> list[Any]:
    """What ``yaml.load_all`` does, with our loader (its signature names only PyYAML's own loaders)."""
    loader: Any = loader_class(text)
    try:
        documents = []
        while loader.check_data():
            documents.append(loader.get_data())
        return documents
    finally:
        loader.dispose()


def _read_yaml(text: str) -> list[Any]:
    """libyaml's composer when the text is small enough to compose unbounded, else, or when it meets
    anything unusual, the composer that bounds while composing (which then names the problem)."""
    if _ComposedInC is not None and len(text) <= _COMPOSED_IN_C_BYTES:
        try:
            return _documents(text, _ComposedInC)
        except (_BeyondBounds, yaml.YAMLError, ValueError, OverflowError):
            pass  # int() of 5000 digits, for one: the other path names it
    return _documents(text, _BoundedLoader)


def load_yaml_documents(text: str, source: str = "<stdin>") -> list[Any]:
    """The non-empty documents of a YAML stream, within the budgets above, or one problem."""
    if len(text) > MAX_MANIFEST_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_MANIFEST_BYTES:
        raise InvalidCodePilot([too_large(source)])
    try:
        return [d for d in _read_yaml(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if len(problem) > 120:
            problem = problem[:120] + "..."
        raise InvalidCodePilot([f"{source}:{where} invalid YAML: {problem}"]) from None


def in_namespace(document: Any, namespace: str | None) -> Any:
    """The document as applied with ``kubectl apply -n NAMESPACE``: a manifest that names no namespace
    takes it (examples are written that way, so one file serves every team); one naming another
    namespace is refused, as kubectl refuses it."""
    if namespace is None or not isinstance(document, dict):
        return document
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return document  # parse_codepilot names the problem
    own = metadata.get("namespace")
    if own is None:
        return {**document, "metadata": {**metadata, "namespace": namespace}}
    if own != namespace:
        given = preview(namespace)
        raise InvalidCodePilot([f"metadata.namespace: {preview(own)} does not match -n {given}"])
    return document


def parse_documents(text: str, source: str = "<stdin>", namespace: str | None = None) -> list[CodePilot]:
    """Every CodePilot in a YAML stream; problems of all documents are reported together.

    ``namespace``: the one ``-n`` gives, for documents that name none (otherwise ``default``, as kubectl).
    """
    documents = load_yaml_documents(text, source)
    if not documents:
        raise InvalidCodePilot([f"{source}: no CodePilot found (the file is empty)"])
    parsed: list[CodePilot] = []
    problems: list[str] = []
    for index, document in enumerate(documents):
        label = source if len(documents) == 1 else f"{source}[document {index + 1}]"
        try:
            parsed.append(parse_codepilot(in_namespace(document, namespace)))
        except InvalidCodePilot as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems)
    if problems:
        raise InvalidCodePilot(_capped(problems))
    return parsed
