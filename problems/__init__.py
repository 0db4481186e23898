"""onemodel's built-in problems. Each module registers one problem and is declared in
setup.py's `onemodel.problems` entry-point group, exactly like a third-party plugin."""
