"""Every command has help text with an example, and the README documents it."""

import click
import pytest
from click.testing import CliRunner

from gmv_sql.cli import cli
from tests.conftest import REPO


def _walk(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from _walk(command, path)


COMMANDS = list(_walk(cli))


def test_the_pipeline_commands_exist():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"db up", "db status", "db url", "db serve", "db stop"} <= names


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in COMMANDS])
def test_command_has_help_with_example(path):
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    command = dict((" ".join(p), c) for p, c in COMMANDS)[path]
    assert command.help and len(command.help.strip()) > 20, f"gmv {path} has no real help text"
    if not isinstance(command, click.Group) or command.invoke_without_command:
        assert "Example" in command.help, f"gmv {path} --help shows no example"


@pytest.mark.parametrize(
    "path", [" ".join(p) for p, c in COMMANDS if not isinstance(c, click.Group) or c.invoke_without_command]
)
def test_readme_documents_command(path):
    readme = (REPO / "README.md").read_text()
    assert f"gmv {path}" in readme, f"README.md does not mention `gmv {path}`"


def test_top_level_help_is_fast_and_torch_free():
    import subprocess
    import sys

    code = "import sys; from gmv_sql.cli import cli; assert 'torch' not in sys.modules, 'torch imported at start-up'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
