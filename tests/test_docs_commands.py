"""Acceptance (docs): every command the README's command-line block shows parses, with flags that exist."""

import re
import shlex
from pathlib import Path

from lstmgan.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands() -> list[list[str]]:
    """The `lstmgan ...` lines of the README's "Command line" block, continuations joined, comments dropped."""
    text = README.read_text()
    block = re.search(r"## Command line\n+```bash\n(.*?)```", text, re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line.split("#")[0])[1:] for line in joined.splitlines() if line.startswith("lstmgan ")]


def test_every_readme_command_parses():
    commands = readme_commands()
    assert len(commands) >= 20
    parser = build_parser()
    for args in commands:
        parsed = parser.parse_args(args)         # an unknown flag or a bad choice exits with code 2
        assert parsed.handler, args
