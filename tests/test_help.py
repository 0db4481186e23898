"""Each command's --help shows what the command is and its own flags."""

import pytest

from conftest import cli

# (tool, flags it must list): one per tool, the flag a newcomer looks for first.
TOOLS = [("onemodel-train", ["--gin_file", "--output_dir", "--manual_dir"]),
         ("onemodel-eval", ["--output_dir", "--split", "--checkpoint"]),
         ("onemodel-decode", ["--decode_from_file", "--decode_to_file"]),
         ("onemodel-export", ["--export_dir"]),
         ("onemodel-predict", ["--saved_model"]),
         ("onemodel-prepare", ["--problem", "--data_dir"]),
         ("onemodel-average", ["--num_last"]),
         ("onemodel-launch", ["--num_workers"]),
         ("onemodel-plan", ["--workload", "--chips"]),
         ("onemodel-problems", [])]


@pytest.mark.parametrize("tool,names", TOOLS, ids=[t for t, _ in TOOLS])
def test_help_shows_the_tools_doc_and_flags(tool, names):
  rc, so, se = cli(tool, "--help")  # (absl exits 1 after printing the help)
  assert so.lstrip().startswith(f"{tool}:"), so[:300]  # the tool's own docstring
  for name in names:
    assert f"  {name}:" in so, (name, so)
  assert "Traceback" not in so + se
