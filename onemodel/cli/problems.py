"""onemodel-problems: list every registered problem (built-in and plugins)."""

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("usr_dir", "", "Directory of problem modules to import (plugins).")


def describe(p) -> str:
  inp = p.inputs.modality if p.inputs is not None else "-"
  return (f"{p.name:<20} {inp:>7} -> {p.targets.modality:<6} "
          f"splits: {', '.join(f'{k}={v}' for k, v in p.splits.items())}; "
          f"metrics: {', '.join(p.metrics)}")


def main(argv):
  del argv
  common.load_plugins()
  from onemodel import registry
  for name in registry.PROBLEMS.names():
    print(describe(registry.get_problem(name)))
  for name in registry.MIXTURES.names():
    m = registry.MIXTURES.get(name)
    rates = m.rates if isinstance(m.rates, str) else ", ".join(
        f"{k}={v}" for k, v in m.rates.items())
    print(f"{name:<20} mixture of {', '.join(m.problems)}; rates: {rates}"
          + (f"; schedule: {list(m.schedule)}" if m.schedule else ""))


def run():
  common.run(main)


if __name__ == "__main__":
  run()
