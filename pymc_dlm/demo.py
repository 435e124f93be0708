r"""Command-line demo: the Nile local level model, fitted with NUTS and plotted.

Run ``python -m pymc_dlm demo --help`` for the options. The demo reads the Nile flows shipped in
``pymc_dlm/data/nile.csv`` (annual flow at Aswan, 1871-1970, in 10^8 m^3) and fits

.. math::

    y_t = \mu_t + v_t,\ v_t \sim N(0, \sigma_{obs}^2);\quad
    \mu_t = \mu_{t-1} + w_t,\ w_t \sim N(0, \sigma_{level}^2),

with :math:`\sigma_{level} \sim \mathrm{HalfNormal}(100)` and
:math:`\sigma_{obs} \sim \mathrm{HalfNormal}(200)`. It prints the posterior summary, draws
the smoothed level for every posterior draw and writes a PNG of it with its 94% band.

References
----------
Durbin & Koopman (2012), §2.2 (the Nile local level model); Petris, Petrone & Campagnoli
(2009), §2.7.
"""

import argparse
import sys
from importlib.resources import files
from pathlib import Path

__all__ = ["main"]


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m pymc_dlm", description="pymc_dlm command-line tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit the Nile local level model and plot its smoothed level",
        description="Fit the Nile local level model with NUTS and plot its smoothed level.",
    )
    demo.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    demo.add_argument("--tune", type=int, default=1000, help="tuning steps (default 1000)")
    demo.add_argument("--chains", type=int, default=2, help="number of chains (default 2)")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("nile_smoothed_level.png"),
        help="PNG file to write (default: nile_smoothed_level.png in the current directory)",
    )
    demo.add_argument("--seed", type=int, default=None, help="random seed (default: none)")
    prebuild = sub.add_parser(
        "prebuild",
        help="compile the kernels ahead of time into a store (see pymc_dlm.prebuild)",
        description="Compile the kernels for the generic CPU into a store that new machines "
        "load instead of compiling (pymc_dlm/_prebuilt by default, or PYMC_DLM_PREBUILT).",
    )
    prebuild.add_argument("directory", type=Path, help="the store's directory (replaced)")
    return parser


def load_nile():
    """Read the Nile data shipped with the package.

    Returns
    -------
    pandas.DataFrame
        Columns ``t`` (1..100), ``year`` (1871..1970) and ``flow`` (10^8 m^3).
    """
    import pandas as pd

    with (files("pymc_dlm") / "data" / "nile.csv").open() as f:
        return pd.read_csv(f)


def run_demo(draws=1000, tune=1000, chains=2, out="nile_smoothed_level.png", seed=None):
    """Fit the Nile local level model, print its summary and write the smoothed-level PNG.

    Parameters
    ----------
    draws, tune, chains : int
        Passed to ``pm.sample``.
    out : str or path-like
        PNG file to write.
    seed : int, optional
        Random seed for sampling and for the state draws.

    Returns
    -------
    pathlib.Path
        Absolute path of the PNG written.
    """
    import arviz as az
    import pymc as pm
    from matplotlib.figure import Figure

    import pymc_dlm as dlm

    nile = load_nile()
    years = nile["year"].to_numpy()
    print(
        f"Nile local level model: {len(years)} years ({years[0]}-{years[-1]}), "
        f"{chains} chain(s) x {draws} draws after {tune} tuning steps",
        flush=True,
    )
    with pm.Model(coords={"year": years}) as model:
        sigma_level = pm.HalfNormal("sigma_level", 100)
        sigma_obs = pm.HalfNormal("sigma_obs", 200)
        dlm.DLM(
            "flow",
            dlm.LocalLevel(sigma_level),
            sigma_obs=sigma_obs,
            observed=nile["flow"].to_numpy(dtype=float),
            dims="year",
        )
        idata = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=min(chains, 2),
            random_seed=seed,
            progressbar=True,
        )
    print(az.summary(idata, var_names=["sigma_level", "sigma_obs"]), flush=True)
    print("Drawing the smoothed level for every posterior draw (FFBS) ...", flush=True)
    states = dlm.sample_states(idata, model, random_seed=seed)

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    dlm.plot_states(states, "flow", states="level", hdi_prob=0.94, ax=ax)
    ax.set_title("Nile at Aswan: smoothed level of the local level model")
    ax.set_ylabel("annual flow (10$^8$ m$^3$)")
    path = Path(out).expanduser().resolve()
    fig.savefig(path, dpi=120)
    return path


def main(argv=None):
    """Run the command line: ``python -m pymc_dlm demo [--draws N] ...`` or ``prebuild DIR``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status 0. A missing or unknown command prints the usage and exits with status 2.
    """
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "demo":
        for name, least in (("draws", 1), ("tune", 0), ("chains", 1)):
            if getattr(args, name) < least:
                _parser().error(f"--{name} must be at least {least}")
        path = run_demo(args.draws, args.tune, args.chains, args.out, args.seed)
        print(f"Wrote {path}")
    elif args.command == "prebuild":
        from pymc_dlm.prebuild import build

        key = build(args.directory)
        print(f"Wrote the kernels' store to {args.directory} (key {key[:12]})")
    return 0
