"""a3bench: train classifiers with defenses and evaluate them honestly.

>>> import a3bench
>>> record = a3bench.benchmark(model, (x, y), norm="Linf", eps=8/255, suite="standard")
>>> atk = a3bench.attack("pgd-20")

The heavy parts (torch) load on first use: ``import a3bench`` stays instant.
"""

__version__ = "0.1.0"

_LAZY = {
    "benchmark": ("a3bench.api", "benchmark"),
    "attack": ("a3bench.api", "attack"),
    "ThreatModel": ("a3bench.threat", "ThreatModel"),
    "load_model": ("a3bench.models.spec", "load_model"),
    "load_dataset": ("a3bench.data", "load_dataset"),
    "evaluate": ("a3bench.eval.runner", "evaluate"),
    "sweep_eps": ("a3bench.eval.sweep", "sweep_eps"),
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'a3bench' has no attribute {name!r}")
