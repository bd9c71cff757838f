"""Model building alone, where its seconds go: `select_model` on the training split of a run config and source, in
this process, without ZenML or MLflow (so no warm start from a registered model: every size tries the same
parameters).

    python bench/model_building.py --source FILE [--config bench/configs/scale.yaml] [--json FILE]

Per family: each trial's seconds (its folds, `n_jobs` at a time; the first trial of the first family also fits the
folds' transforms, kept for the whole search) and its final fit's seconds (the families' final fits run side by
side); `final_fits_seconds` is the whole last part: the transforms fitted on the training split, every final fit
and the training scores. `python bench/scale.py --in-process` runs this per size and prints how each part grows.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict

from common import ROOT, training_setup, write_json

from heartml.core.preprocessing import features_and_target  # noqa: E402  (after common: the project on sys.path)
from heartml.core.selection import SOFT_VOTING, select_model  # noqa: E402


def model_building(config: str, source: str) -> Dict[str, Any]:
    setup = training_setup(ROOT / config, source=source)
    X, y = features_and_target(setup.train, setup.dataset)
    started = time.perf_counter()
    selection = select_model(X, y, setup.features, setup.modeling)
    seconds = time.perf_counter() - started
    families = {name: {"trials": [t.seconds for t in candidate.tuning.trials] if candidate.tuning else [],
                       "cv_seconds": candidate.cv_seconds, "fit_seconds": candidate.fit_seconds}
                for name, candidate in selection.candidates.items() if name != SOFT_VOTING}
    # The soft vote is cross-validated from its members' out-of-fold probabilities and fitted from their fits.
    vote = selection.candidates.get(SOFT_VOTING)
    vote_seconds = vote.cv_seconds if vote else 0.0
    searched = sum(family["cv_seconds"] for family in families.values()) + vote_seconds
    return {"config": config, "training_rows": len(X), "seconds": seconds, "families": families,
            "soft_voting_cv_seconds": vote_seconds, "final_fits_seconds": seconds - searched,
            "selected": selection.selected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="the training data (a file or URI, as run.py --source)")
    parser.add_argument("--config", default="bench/configs/scale.yaml", help="run config, relative to the project")
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()
    figure = model_building(args.config, args.source)
    print(f"{figure['training_rows']:,} training rows: select_model {figure['seconds']:.1f} s, final fits "
          f"{figure['final_fits_seconds']:.1f} s", flush=True)
    for name, family in figure["families"].items():
        trials = ", ".join(f"{seconds:.1f}" for seconds in family["trials"])
        print(f"  {name}: trials {trials} s, final fit {family['fit_seconds']:.1f} s", flush=True)
    write_json(args.json, figure)


if __name__ == "__main__":
    main()
