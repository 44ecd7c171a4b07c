"""``python -m pseudoedgenet``: the ``pseudoedgenet`` command, for an environment whose
scripts folder is not on PATH (or a source checkout on ``PYTHONPATH``)."""

from pseudoedgenet.cli import main

if __name__ == "__main__":
    main()
