"""``python -m itk_suits``: the ``itk-suits`` command line."""

from itk_suits.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
