"""Attack names → :class:`~a3bench.attacks.base.Attack` objects, and suites of names.

Syntax of one attack: ``NAME[:OPTION=VALUE[:OPTION=VALUE ...]]`` — options are separated
by ``:`` so that a comma-separated ``--attacks`` list stays unambiguous::

    pgd-100                         PGD, 100 iterations, CE loss, 1 random start
    pgd-100:loss=dlr:restarts=5     DLR loss, 5 random starts
    pgd-50:step=1/255:loss=logit-scaled
    fgsm, apgd-ce, apgd-dlr, apgd-t, fab-t, square, autoattack, autoattack-rand

A composite name (``autoattack``) expands into its components, each a separate step of
the worst-case cascade (so the record shows what each component broke).

Extending (adaptive attacks register the same way, in their own module)::

    @register_attack("eot-pgd-K", pattern=r"eot-pgd-(\\d+)", help="PGD with EOT gradients")
    def _eot(spec: AttackSpec) -> Attack:
        return EOTPGD(steps=int(spec.match.group(1)), **spec.options)

    register_suite("adaptive", ["mode-transfer", "bpda-a3", "a3-scale"], help="...")

A factory receives an :class:`AttackSpec` (``text``, ``head``, ``match``, the raw
``arg`` after the first ``:`` and the parsed ``options``) and returns an Attack or a
list of Attacks. Attacks that do not fit a model say so through ``Attack.applies_to``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from a3bench.attacks.base import Attack
from a3bench.errors import AttackError

Factory = Callable[["AttackSpec"], "Attack | list[Attack]"]


@dataclass(frozen=True)
class AttackSpec:
    """One parsed attack name: ``pgd-100:loss=dlr:restarts=5``."""

    text: str  # as written (whitespace stripped)
    head: str  # before the first ':' ("pgd-100")
    arg: str | None  # everything after the first ':' (raw; for factories with their own syntax)
    match: re.Match
    options: dict[str, str] = field(default_factory=dict)  # parsed OPTION=VALUE pairs ({} if not parseable)

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)


@dataclass(frozen=True)
class _Entry:
    display: str  # "pgd-K"
    regex: re.Pattern
    factory: Factory
    help: str
    options: tuple[str, ...]  # accepted option keys (); ("*",) = the raw text after ':' goes to the factory
    example: str  # a cheap instance ("pgd-3"): the tests run every registered attack through it
    arg_head: str | None = None  # matches only when the text after the head starts with this ("transfer:distill")
    autoattack: str | None = None  # a composite that is AutoAttack itself: its version ("standard", "rand")


@dataclass(frozen=True)
class Suite:
    """A named list of attack names run in order as one cascade."""

    name: str
    attacks: tuple[str, ...]
    help: str
    escalates: bool = False  # spends more (docs/attacks.md, escalation) when the gradients are found to lie


_ATTACKS: dict[str, _Entry] = {}
_SUITES: dict[str, Suite] = {}

# Modules that register more attacks/suites; imported on the first lookup (not when
# a3bench.attacks is imported) so `a3bench --help` stays instant. Add yours here.
ATTACK_MODULES: list[str] = ["a3bench.attacks.distill", "a3bench.attacks.adaptive", "a3bench.attacks.crossmax", "a3bench.attacks.bpda_graph", "a3bench.attacks.spsa",
                              "a3bench.attacks.square", "a3bench.attacks.gama", "a3bench.attacks.attention",
                              "a3bench.attacks.suites"]  # suites last: they name the others
_loaded = False


def _load_modules() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import importlib.util

    for mod in ATTACK_MODULES:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


def register_attack(name: str, factory: Factory | None = None, *, pattern: str | None = None, help: str = "", options: Sequence[str] = (),
                    raw_arg: bool = False, example: str | None = None, arg_head: str | None = None, autoattack: str | None = None):
    """Register ``factory`` under ``name`` (a display name like ``pgd-K``).

    ``pattern`` is a regex the head must match in full (default: the name itself).
    ``options`` are the accepted ``KEY=VALUE`` keys; with ``raw_arg`` the text after the
    first ``:`` is handed over unparsed (``transfer:SPEC``). ``arg_head``: the entry matches
    only when that text starts with it (``transfer:distill``, registered before the
    catch-all ``transfer:SPEC``); its options follow it. ``example`` is a cheap instance
    the tests run (``pgd-3``; ``{model}`` stands for a surrogate checkpoint); it defaults to
    the name itself. ``autoattack``: this composite is AutoAttack in that version — what the
    runner swaps for a randomised model and the diagnostics read AutoAttack's number from.
    The factory's attack is named once here, by the text as written (lower case, no spaces).
    Usable as a decorator.
    """

    def add(f: Factory) -> Factory:
        regex = re.compile(pattern if pattern is not None else re.escape(name))
        opts = ("*",) if raw_arg else tuple(options)
        _ATTACKS[name] = _Entry(name, regex, f, help, opts, example or name, arg_head, autoattack)
        return f

    return add(factory) if factory is not None else add


def register_suite(name: str, attacks: Sequence[str], *, help: str = "", escalates: bool = False) -> None:
    """A suite is a named list of attack names, run in order as one cascade; ``escalates``:
    it promises an adaptive evaluation, so it spends more when the gradients are found to lie."""
    _SUITES[name] = Suite(name, tuple(attacks), help, escalates)


def get_suite(name: str) -> Suite:
    _load_modules()
    key = name.strip().lower()
    if key not in _SUITES:
        raise AttackError(f"unknown suite {name!r} (valid: {', '.join(_SUITES)})")
    return _SUITES[key]


def autoattack_composites() -> dict[str, str]:
    """Composite name → AutoAttack version, for every composite that is AutoAttack
    (records name them in ``AttackRecord.group``)."""
    _load_modules()
    return {e.display: e.autoattack for e in _ATTACKS.values() if e.autoattack}


def autoattack_composite(version: str) -> str:
    """The composite that runs AutoAttack in ``version``."""
    for name, v in autoattack_composites().items():
        if v == version:
            return name
    raise KeyError(version)


def list_attacks() -> dict[str, str]:
    """Display name → one-line help, in registration order."""
    _load_modules()
    return {e.display: e.help for e in _ATTACKS.values()}


def attack_examples() -> dict[str, str]:
    """Display name → a cheap instance of it (for tests and docs)."""
    _load_modules()
    return {e.display: e.example for e in _ATTACKS.values()}


def list_suites() -> dict[str, tuple[tuple[str, ...], str]]:
    """Suite name → (attack names, one-line help)."""
    _load_modules()
    return {name: (s.attacks, s.help) for name, s in _SUITES.items()}


def _valid_names() -> str:
    return ", ".join(list(_ATTACKS)) + "; suites: " + ", ".join(_SUITES)


def parse_options(arg: str | None, text: str) -> dict[str, str]:
    if not arg:
        return {}
    options = {}
    for part in arg.split(":"):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise AttackError(f"attack {text!r}: option {part!r} is not KEY=VALUE (e.g. pgd-100:loss=dlr:restarts=5)")
        options[key.strip().lower()] = value.strip()
    return options


def parse_attack(text: str) -> tuple[_Entry, AttackSpec]:
    _load_modules()
    text = text.strip()
    head, _, arg = text.partition(":")
    head = head.strip().lower()
    if not head.isascii():  # "pgd-٣" would be pgd-3 under another name, run twice
        raise AttackError(f"attack {text!r}: names are ASCII (digits 0-9)")
    # entries keyed on their argument's head first, whatever order the modules registered in
    for entry in sorted(_ATTACKS.values(), key=lambda e: e.arg_head is None):
        m = entry.regex.fullmatch(head)
        if m is None:
            continue
        if entry.arg_head is not None:
            sub, _, rest = (arg or "").partition(":")
            if sub.strip().lower() != entry.arg_head:
                continue
            arg = rest
        for count in m.groups():
            if count is not None and count.isdigit() and int(count) > MAX_COUNT:
                raise AttackError(f"attack {text!r}: {count} is more than {MAX_COUNT} (an iteration or query count)")
        if entry.options == ("*",):
            return entry, AttackSpec(text, head, arg or None, m, {})
        if arg and not arg.isascii():
            raise AttackError(f"attack {text!r}: options are ASCII (digits 0-9)")
        options = parse_options(arg, text)
        unknown = sorted(set(options) - set(entry.options))
        if unknown:
            valid = ", ".join(entry.options) or "none"
            raise AttackError(f"attack {text!r}: unknown option(s) {', '.join(unknown)} (valid for {entry.display}: {valid})")
        return entry, AttackSpec(text, head, arg or None, m, options)
    raise AttackError(f"unknown attack {text!r} (valid: {_valid_names()})")


def canonical_name(text: str) -> str:
    """The name an attack is recorded under: as written, lower case, no spaces — except a
    raw argument (``transfer:SPEC``: a path keeps its case)."""
    entry, spec = parse_attack(text)
    if entry.options == ("*",) and spec.arg:
        return f"{spec.head}:{spec.arg.strip()}"
    return "".join(spec.text.lower().split())


def build_attack(text: str) -> list[Attack]:
    """One attack name → its Attack objects (a composite gives several, named by their factory)."""
    entry, spec = parse_attack(text)
    made = entry.factory(spec)
    attacks = made if isinstance(made, list) else [made]
    if not attacks or not all(isinstance(a, Attack) for a in attacks):
        raise TypeError(f"attack factory for {entry.display} must return an Attack or a list of them")
    if not isinstance(made, list):
        made.name = canonical_name(text)
    return attacks


_OPEN = {"[": "]", "(": ")", "{": "}"}
_QUOTES = "\"'"


def split_names(text: str | Iterable[str]) -> list[str]:
    """``--attacks`` → attack names: split on commas, except inside brackets or quotes, so
    a spec with commas of its own can be written ``transfer:[ensemble:A,B]`` (or
    ``transfer:"ensemble:A,B"``). Quotes are removed; so are brackets that enclose a whole
    option (right after ``:``, up to the end or the next ``:``)."""
    parts = _split_top(text) if isinstance(text, str) else [str(p) for p in text]
    names = [_unwrap(p.strip()) for p in parts if p and p.strip()]
    if not names:
        raise AttackError("no attacks given (--attacks is empty: name at least one attack)")
    return names


def _split_top(text: str) -> list[str]:
    parts, current, stack, quote = [], [], [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in _QUOTES:
            quote = ch
        elif ch in _OPEN:
            stack.append(_OPEN[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        elif ch in _OPEN.values():
            raise AttackError(f"--attacks {text!r}: {ch!r} closes nothing")
        elif ch == "," and not stack:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quote or stack:
        raise AttackError(f"--attacks {text!r}: {'a quote' if quote else 'a bracket'} is not closed")
    parts.append("".join(current))
    return parts


def _unwrap(name: str) -> str:
    """Remove quotes, and brackets around a whole ``:``-separated part."""
    out, i = [], 0
    while i < len(name):
        ch = name[i]
        if ch in _QUOTES:
            j = name.index(ch, i + 1)
            out.append(name[i + 1 : j])
            i = j + 1
            continue
        if ch in _OPEN and (i == 0 or name[i - 1] == ":"):
            j = _closing(name, i)
            if j + 1 == len(name) or name[j + 1] == ":":
                out.append(name[i + 1 : j])
                i = j + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    depth, close = 0, _OPEN[text[start]]
    for j in range(start, len(text)):
        if text[j] == text[start]:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j
    return len(text)  # unbalanced: _split_top refused it already


@dataclass(frozen=True)
class AttackPlan:
    """What a run will do: the names asked for, the suite (if any) and the cascade.
    Frozen: a run that adapts the plan gets a new one (:meth:`with_attacks`)."""

    names: list[str]
    attacks: list[Attack]
    suite: str | None = None
    escalates: bool = False  # the suite promises an adaptive evaluation (Suite.escalates)

    def with_attacks(self, attacks: Sequence[Attack]) -> "AttackPlan":
        return AttackPlan(names=list(self.names), attacks=list(attacks), suite=self.suite, escalates=self.escalates)


def resolve(suite: str | None = None, attacks: str | Sequence[str] | None = None) -> AttackPlan:
    """``--suite`` or ``--attacks`` (not both) → the cascade; default suite ``quick``.

    A suite that names an attack twice (``full``: AutoAttack's Square and the adaptive
    suite's) runs it once, where it first appears; a list given by hand must not."""
    if suite and attacks is not None:
        raise AttackError("give --suite or --attacks, not both")
    chosen = None
    if attacks is not None:  # --attacks '' is a mistake, not the default suite
        names = split_names(attacks)
    else:
        chosen = get_suite(suite or "quick")
        names = list(chosen.attacks)
    built: list[Attack] = []
    seen: dict[str, Attack] = {}
    for name in names:
        for a in build_attack(name):
            if a.name in seen:
                if chosen is not None and type(seen[a.name]) is type(a) and seen[a.name].config() == a.config():
                    continue
                raise AttackError(f"attack {a.name!r} appears twice in the cascade")
            seen[a.name] = a
            built.append(a)
    return AttackPlan(names=names, attacks=built, suite=chosen.name if chosen else None,
                      escalates=chosen.escalates if chosen else False)


# --------------------------------------------------------------------------- built-ins


# Iterations, queries, restarts, samples: an integer in an attack's name or options is at
# most this (aas:search_steps=99999999999 would run for ever).
MAX_COUNT = 100_000


def int_option(spec: AttackSpec, key: str, default: int) -> int:
    value = spec.option(key)
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise AttackError(f"attack {spec.text!r}: {key} must be an integer, got {value!r}") from None
    if not 1 <= n <= MAX_COUNT:
        raise AttackError(f"attack {spec.text!r}: {key} must be ≥ 1 and ≤ {MAX_COUNT}, got {value}")
    return n


def float_option(spec: AttackSpec, key: str, default: float, *, low: float, high: float | None = None, open_low: bool = False) -> float:
    """A finite number option in [low, high] ((low, high] with ``open_low``; no upper bound when high is None)."""
    import math

    value = spec.option(key)
    if value is None:
        return default
    try:
        x = float(value)
    except ValueError:
        raise AttackError(f"attack {spec.text!r}: {key} must be a number, got {value!r}") from None
    too_low = x <= low if open_low else x < low
    if not math.isfinite(x) or too_low or (high is not None and x > high):
        bound = f"{'>' if open_low else '≥'} {low:g}" + (f" and ≤ {high:g}" if high is not None else "")
        raise AttackError(f"attack {spec.text!r}: {key} must be {bound}, got {value!r}")
    return x


def positive_option(spec: AttackSpec, key: str, default: float) -> float:
    """A number option > 0, written as a number or a fraction (``8/255``)."""
    from a3bench.threat import parse_eps

    value = spec.option(key)
    if value is None:
        return default
    out = parse_eps(value)
    if out <= 0:
        raise AttackError(f"attack {spec.text!r}: {key} must be > 0")
    return out


def step_option(spec: AttackSpec) -> float | None:
    from a3bench.threat import parse_eps

    value = spec.option("step")
    if value is None:
        return None
    step = parse_eps(value)
    if step == 0:
        raise AttackError(f"attack {spec.text!r}: step must be > 0")
    return step


def loss_option(spec: AttackSpec, default: str = "ce") -> str:
    from a3bench.attacks.losses import get_loss

    loss = (spec.option("loss") or default).lower()
    get_loss(loss)  # validates
    return loss


@register_attack("pgd-K", pattern=r"pgd-(\d+)", help="PGD, K iterations (Madry et al. 2018); options loss, restarts, step", options=("loss", "restarts", "step"),
                 example="pgd-3:restarts=2")
def _pgd(spec: AttackSpec) -> Attack:
    from a3bench.attacks.pgd import PGD

    steps = int(spec.match.group(1))
    if steps < 1:
        raise AttackError(f"attack {spec.text!r}: K must be ≥ 1")
    return PGD(steps, step_size=step_option(spec), restarts=int_option(spec, "restarts", 1), loss=loss_option(spec))


@register_attack("fgsm", help="FGSM, one step of size eps (Goodfellow et al. 2015); option loss", options=("loss",))
def _fgsm(spec: AttackSpec) -> Attack:
    from a3bench.attacks.pgd import FGSM

    return FGSM(loss=loss_option(spec))


def _component(component: str, help: str) -> None:
    def factory(spec: AttackSpec) -> Attack:
        from a3bench.attacks.autoattack import AutoAttackComponent

        return AutoAttackComponent(component)

    register_attack(component, factory, help=help)


_component("apgd-ce", "APGD with CE loss (Croce & Hein 2020), AutoAttack standard settings, via pyautoattack")
_component("apgd-dlr", "APGD with DLR loss, via pyautoattack")
_component("apgd-t", "targeted APGD-DLR, 9 target classes, via pyautoattack")
_component("fab-t", "targeted FAB, 9 target classes, via pyautoattack")
_component("square", "Square Attack, black-box, 5000 queries (Andriushchenko et al. 2020), via pyautoattack")


@register_attack("autoattack", help="AutoAttack standard: apgd-ce, apgd-t, fab-t, square (pyautoattack)", autoattack="standard")
def _autoattack(spec: AttackSpec) -> list[Attack]:
    return _components(spec, "standard")


@register_attack("autoattack-rand", help="AutoAttack rand (randomised defenses): apgd-ce, apgd-dlr with EOT over 20 samples",
                 autoattack="rand")
def _autoattack_rand(spec: AttackSpec) -> list[Attack]:
    return _components(spec, "rand")


def _components(spec: AttackSpec, version: str) -> list[Attack]:
    from a3bench.attacks.autoattack import VERSIONS, AutoAttackComponent

    made = [AutoAttackComponent(c, version=version, group=spec.head) for c in VERSIONS[version]]
    for a in made:
        a.autoattack = version
    return made


register_suite("quick", ["pgd-20"], help="PGD-20: a first look, seconds on CPU")
register_suite("pgd", ["pgd-10", "pgd-20", "pgd-50", "pgd-100"], help="PGD with growing iterations: does accuracy still fall?")
register_suite("standard", ["autoattack"], help="AutoAttack standard (RobustBench's number)")
