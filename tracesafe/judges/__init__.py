"""Judges: harm and refusal classifiers behind one protocol and a name registry.

``run_judges`` is the judge stage (traces -> verdicts, resumable and cached); ``get_judge`` /
``list_judges`` reach the registry; ``evaluate_judge`` measures a judge against human labels.
Built-in judges live one per module (refusal, offline, llama_guard, wildguard, harmbench, rubric).

To add a judge:
1. write ``tracesafe/judges/<name>.py``: subclass ``BaseJudge`` with ``judge(items)`` (and ``chunk``/``config``
   where it needs them; a model judge subclasses ``ModelJudge`` and only renders and parses), declaring
   ``kind`` (harm/refusal), ``grade`` (standard/screening) and ``version`` on the class;
2. decorate it with ``@register_judge("<name>")``;
3. add the module to ``BUILTIN_MODULES`` in ``_base.py`` (a third-party package names its module in the
   ``tracesafe.judges`` entry-point group instead);
4. tests/test_judge_contract.py then checks it with every other judge; measure it (``evaluate_judge``) and
   ship its judge card before it is a default.
"""

from ._base import (
    BaseJudge,
    Judge,
    JudgeInfo,
    JudgeItem,
    JudgeResult,
    get_judge,
    list_judges,
    register_judge,
)
from ._batch import check_judges
from ._eval import METRICS, evaluate_judge, load_gold
from ._run import SEGMENTS, check_segments, run_judges

__all__ = [
    "BaseJudge", "Judge", "JudgeInfo", "JudgeItem", "JudgeResult", "METRICS", "SEGMENTS", "check_judges", "check_segments", "evaluate_judge", "get_judge",
    "list_judges", "load_gold", "register_judge", "run_judges",
]  # fmt: skip
