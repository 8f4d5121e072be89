"""The log-probability prior of ``train/process_scorer.py --logprob_prior true``, fit on a scorer already trained.

    python results/frontier-cpu-smollm2-135m/experiment-process-scorer/fit_prior.py SCORER_DIR SCORER_DATA_DIR

The same held-out training problems (``scorer_eval_fraction`` 0.1), the same pairs (16 per problem and
condition) and the same function (:func:`thinkbudget.process_scorer.fit_logprob_prior`) as the training
script; writes the weight into the scorer's ``scorer.json`` and prints it with the held-out pairwise accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from thinkbudget.process_scorer import ProcessScorer, fit_logprob_prior
from thinkbudget.scorer import (
    SCORER_CONFIG_FILE,
    build_pairs,
    held_out_problem,
    load_scorer_data,
    share_ranked_right,
)


def main(scorer_dir: str, data_dir: str) -> None:
    records, _ = load_scorer_data([data_dir])
    held = [r for r in records if held_out_problem(r, 0.1)]
    pairs = build_pairs(held, scope="condition", max_pairs_per_group=16)
    scorer = ProcessScorer(scorer_dir, dtype="bfloat16")
    w = fit_logprob_prior(scorer, pairs)
    config_file = Path(scorer_dir) / SCORER_CONFIG_FILE
    config = json.loads(config_file.read_text())
    config["logprob_weight"] = w
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    scorer.logprob_weight = w
    keys = list({r["key"]: r for pair in pairs for r in pair}.values())
    scores = {r["key"]: s for r, (s, _) in zip(keys, scorer.score_records(keys))}
    accuracy = share_ranked_right(pairs, scores)
    print(
        json.dumps(
            {"logprob_weight": w, "held_out_pairs": len(pairs), "held_out_pairwise_accuracy": accuracy}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
