"""What ``--help`` and the docs say agrees with what the commands do: stated defaults are the
parsers' and the methods' defaults, and the documented synopsis of ``nuat eval`` lists its options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from nuat.cli import SUBCOMMANDS, build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and a.dest not in ("help", "version")]


def _shown(value: object) -> set[str]:
    """How a default may be written in a help text: 1000, 0.6, 4.0 as '4.0' or '4', eps/10."""
    if isinstance(value, float):
        return {f"{value:g}", repr(value)}
    return {str(value)}


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_fixed_default_is_stated_in_the_help(command):
    """An option whose parser default is a value (not None: 'the recipe's', 'the method's') says it
    in its help, and says that value: a help that states another default would mislead."""
    missing = []
    for action in _options(_subparsers()[command]):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS or isinstance(action.default, list):
            continue
        text = action.help or ""
        stated = re.findall(r"default:?\s*([^\s;)]+)", text) + re.findall(r"([^\s(;,]+) \(default[,)]", text)
        if not any(s.rstrip(".:") in _shown(action.default) for s in stated):
            missing.append(f"{action.option_strings[0]} (default {action.default!r}): {text!r}")
    assert not missing, "help does not state the parser's default:\n" + "\n".join(missing)


def test_switch_threshold_help_states_the_hybrid_methods_default():
    from nuat.methods import get_method

    [action] = [a for a in _options(_subparsers()["train"]) if a.dest == "switch_threshold"]
    for name in ("nuat-h", "nuat-wa-h"):
        default = get_method(name).hparams["switch_threshold"]
        assert f"(default {default:g})" in action.help


def _eval_synopsis() -> str:
    text = (DOCS / "evaluation.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    [synopsis] = [b for b in blocks if b.startswith("nuat eval RUN_DIR|CHECKPOINT")]
    return synopsis


def test_eval_synopsis_in_the_docs_lists_every_option_with_its_default():
    synopsis = _eval_synopsis()
    for action in _options(_subparsers()["eval"]):
        flag = action.option_strings[0]
        assert re.search(rf"(?<![\w-]){re.escape(flag)}\b", synopsis), f"docs/evaluation.md's synopsis lacks {flag}"
        if isinstance(action.default, (int, float, str)) and not isinstance(action.default, bool):
            shown = re.search(rf"\[{re.escape(flag)} ([^\]\s]+)\]", synopsis)
            assert shown and shown.group(1) in _shown(action.default), (
                f"docs/evaluation.md shows {flag} {shown.group(1) if shown else None}, "
                f"the default is {action.default!r}")
