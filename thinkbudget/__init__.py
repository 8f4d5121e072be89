"""thinkbudget: hybrid reasoning (thinking on/off, thinking-token budgets) for small language models.

The stages (``train/sft.py``, ``train/rl.py``, ``eval/evaluate.py``) share this package:
``protocol`` (chat template and controls), ``parsing`` (the one token counter), ``grading`` (the one
correctness check: rewards and evaluation call it), ``traces`` (the one trace checker), ``models``
(embedded default and loading), ``forcing`` (budget forcing). ``scorer`` is something else: the
*trained* best-of-N scorer (a reward-model head). The README's Layout section lists every module.
"""

__version__ = "0.1.0"
