"""Command lines from dataclasses (superseded by tyro; kept while scripts still import it).

The examples and benchmarks keep their arguments in a dataclass with a docstring
under each field (CleanRL's style); ``dataclass_parser`` turns it into an
``argparse`` parser, so the dataclass stays the one place an argument is written.

>>> import dataclasses
>>> @dataclasses.dataclass
... class Args:
...     steps: int = 10
...     \"\"\"gradient steps\"\"\"
...     tiny: bool = False
...     \"\"\"a smoke run\"\"\"
...     names: tuple = ("a",)
...     \"\"\"some names\"\"\"
>>> parser = dataclass_parser(Args)
>>> from_namespace(Args, parser.parse_args(["--steps", "3", "--tiny", "--names", "x", "y"]))
Args(steps=3, tiny=True, names=('x', 'y'))
>>> parse_overrides("hidden=16, lr=1e-3, name='a'")
{'hidden': 16, 'lr': 0.001, 'name': 'a'}
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
from typing import Any

from campusnav.overrides import parse_overrides

__all__ = ["dataclass_parser", "field_docs", "from_namespace", "parse_overrides"]


def field_docs(cls: type) -> dict[str, str]:
    """``{field: the string literal written under it}``; empty when the class's source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # defined in an interactive session or a doctest
        return {}
    body = tree.body[0].body
    return {
        a.target.id: b.value.value
        for a, b in zip(body, body[1:], strict=False)
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
        and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)
    }


def dataclass_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """A parser with one ``--field-name`` per field of the dataclass ``cls``; ``cls(**vars(args))`` rebuilds it.

    A bool field is a ``--flag/--no-flag`` pair, a tuple field takes one or more
    values (returned as a tuple), a list field (``default_factory=list``) zero or
    more strings, any other field is parsed with its default's type.
    """
    helps = field_docs(cls)
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag, kind = "--" + f.name.replace("_", "-"), type(default)
        help_text = helps.get(f.name)
        if help_text:
            help_text = help_text.replace("%", "%%")  # argparse formats help strings with %
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif kind is tuple:
            parser.add_argument(flag, nargs="+", default=default, type=_tuple_item(default), help=help_text)
        elif kind is list:
            parser.add_argument(flag, nargs="*", default=default, help=help_text)
        elif default is None:
            parser.add_argument(flag, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=default, help=help_text)
    return parser


def from_namespace(cls: type, namespace: argparse.Namespace) -> Any:
    """``cls(**vars(namespace))``, with the lists argparse gives for tuple fields turned back into tuples."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(namespace).items()})


def _tuple_item(default: tuple) -> type:
    return type(default[0]) if default else str
