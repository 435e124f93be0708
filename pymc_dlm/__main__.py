"""``python -m pymc_dlm``: command-line entry point (see :mod:`pymc_dlm.demo`)."""

from pymc_dlm.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
