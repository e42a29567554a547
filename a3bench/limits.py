"""What untrusted input may claim, and the bounded readers that hold it to that.

A file that is small on disk must not be able to make a3bench allocate gigabytes before it
is refused: a YAML alias bomb, a gzip bomb, an image header declaring 100k×100k pixels, a
checkpoint declaring 12 million classes. Every such size is checked here, against the
bounds below, *before* the memory is claimed. The bounds are far above anything the
datasets and models a3bench serves need (CIFAR-10's training set is 150 MB, WRN-28-10
has 36 M parameters).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from a3bench.errors import A3BenchError, excerpt

# Text files a3bench reads (configs, model cards, --set values) are a few KB.
MAX_YAML_BYTES = 1 << 20
# YAML nodes and scalar characters *after* expanding aliases (an alias bomb is tiny
# before and exponential after), and the nesting depth of any structured input.
MAX_NODES = 100_000
MAX_CHARS = 4 << 20
MAX_DEPTH = 50

# Models: what a checkpoint's metadata, a config or a card may declare.
MAX_CLASSES = 100_000
MAX_CHANNELS = 64
MAX_SIDE = 4096  # model input height/width, image width/height
MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights
MAX_OPTION = 1 << 14  # an integer architecture option (a ViT's dim, depth, heads ...)

# Data: decoded bytes of one split, pixels of one image.
MAX_DATA_BYTES = 1 << 31
MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
# Adversarial examples (``<stem>.adv.pt``, ``verify --adv``): float32 points, checked on disk
# before loading. 5,000 ImageNet images at 224×224 are 3 GB; 10,000 CIFAR ones 123 MB.
MAX_ADV_BYTES = 1 << 32

# Seeds: what numpy and torch generators accept everywhere, with room for offsets.
MAX_SEED = 2**32 - 1


def check_seed(seed: object, what: str = "seed", error: type[A3BenchError] = A3BenchError) -> int:
    """``seed`` as an int in 0..MAX_SEED, or ``error``: a huge seed overflows the generators."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise error(f"{what} must be an integer, got {excerpt(seed)}")
    if not 0 <= seed <= MAX_SEED:
        raise error(f"{what} must be between 0 and {MAX_SEED}, got {excerpt(seed, 30)}")
    return seed


def check_count(value: object, what: str, low: int, high: int, error: type[A3BenchError]) -> int:
    """An integer in ``low..high`` (bools refused), or ``error`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an integer, got {excerpt(value)}")
    if not low <= value <= high:
        raise error(f"{what} must be between {low} and {high}, got {excerpt(value, 30)}")
    return value


def check_number(value: object, what: str, error: type[A3BenchError]) -> float:
    """A finite real number (bools refused), or ``error`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{what} must be a number, got {excerpt(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise error(f"{what} is too large: {excerpt(value, 30)}") from None
    if not math.isfinite(number):
        raise error(f"{what} must be a finite number, got {number}")
    return number


# --------------------------------------------------------------------------- nested data


def check_plain(value: Any, source: str, error: type[A3BenchError], max_nodes: int = MAX_NODES) -> None:
    """Refuse nested data that is not plain (dicts with string keys, lists, tuples, str, int,
    float, bool, None), is nested deeper than MAX_DEPTH, or is bigger than ``max_nodes``
    items / MAX_CHARS characters *counting every shared reference again*: a pickle or a
    YAML file can repeat one list a billion times in a few bytes, or hold itself."""
    nodes = chars = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise error(f"{source} is too large (more than {max_nodes} items, counting repeated references)")
        if depth > MAX_DEPTH:
            raise error(f"{source} is nested more than {MAX_DEPTH} levels deep")
        if item is None or isinstance(item, (bool, int, float)):
            continue
        if isinstance(item, str):
            chars += len(item)
            if chars > MAX_CHARS:
                raise error(f"{source} is too large (more than {MAX_CHARS} characters of text)")
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise error(f"{source}: key {excerpt(key)} is not a string")
                stack.append((key, depth + 1))
                stack.append((child, depth + 1))
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
            continue
        raise error(f"{source} holds a {type(item).__name__}, not plain data")


# --------------------------------------------------------------------------- YAML


def read_yaml(path: str | Path, error: type[A3BenchError]) -> Any:
    """Read a YAML file a3bench was given (a config, a model card) within the bounds above."""
    from a3bench.io import read_regular_bytes

    raw = read_regular_bytes(path, MAX_YAML_BYTES, "YAML file", error)  # a FIFO or a device is refused, never waited on
    return load_yaml(raw, str(path), error)


def load_yaml(text: str | bytes, source: str, error: type[A3BenchError], *, text_if_invalid: bool = False) -> Any:
    """``yaml.safe_load`` that refuses, before building any value, a document that is
    larger than MAX_YAML_BYTES, expands past MAX_NODES nodes or MAX_CHARS characters
    through its aliases, refers to itself, or nests deeper than MAX_DEPTH.

    ``text_if_invalid``: text that is not YAML at all is returned as the string it is
    (``--set key=value`` values), instead of being an error."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise error(f"{source} is longer than {MAX_YAML_BYTES} bytes; a3bench reads YAML up to that size")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{source} is not UTF-8 text (byte {e.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # the node graph: aliases are shared nodes, nothing expanded
        if node is None:
            return None
        _check_yaml_nodes(node, source, error)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        if text_if_invalid:
            return text
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise error(f"{source} is not valid YAML{where}: {excerpt(problem, 80)}") from None
    except RecursionError:
        raise error(f"{source} is nested too deeply") from None
    finally:
        loader.dispose()


def _check_yaml_nodes(root, source: str, error: type[A3BenchError]) -> None:
    """The size of the document with every alias expanded, computed over the shared node
    graph (each node once, memoised), so the check itself costs no more than the text."""
    import yaml

    size: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, characters) when expanded
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            nodes, chars = 1, 0
            for child in _yaml_children(node):
                n, c = size[id(child)]
                nodes, chars = nodes + n, chars + c
            size[key] = (nodes, chars)
            if nodes > MAX_NODES:
                raise error(f"{source} expands to more than {MAX_NODES} values through its aliases (&/*)")
            if chars > MAX_CHARS:
                raise error(f"{source} expands to more than {MAX_CHARS} characters through its aliases (&/*)")
            continue
        if key in size:
            continue
        if key in on_path:
            raise error(f"{source} refers to itself (an alias inside its own anchor)")
        if depth > MAX_DEPTH:
            raise error(f"{source} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            size[key] = (1, len(node.value))
            continue
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _yaml_children(node) if id(child) not in size)


def _yaml_children(node) -> list:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
