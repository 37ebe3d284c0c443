"""``nuat bench``: timing of training methods, of the passes they are made of, and of the
nuclear-norm backends; JSON and Markdown reports (docs/speed.md)."""

from nuat.bench.runner import BenchConfig, run_bench
from nuat.bench.variants import Variant, parse_variant, parse_variants

__all__ = ["BenchConfig", "Variant", "parse_variant", "parse_variants", "run_bench"]
