"""thinkbudget: hybrid reasoning (thinking on/off, thinking-token budgets) for small language models.

The stages (``train/sft.py``, ``train/rl.py``, ``eval/evaluate.py``) share this package:
``protocol`` (chat template and controls), ``parsing`` (the one token counter), ``scoring`` (the one
correctness check), ``models`` (embedded default and loading), ``forcing`` (budget forcing).
"""

__version__ = "0.1.0"
