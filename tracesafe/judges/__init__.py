"""Judges: harm and refusal classifiers behind one protocol and a name registry.

``run_judges`` is the judge stage (traces -> verdicts, resumable and cached); ``get_judge`` /
``list_judges`` reach the registry; ``evaluate_judge`` measures a judge against human labels.
Built-in judges live one per module (refusal, offline, llama_guard, wildguard, harmbench, rubric).
To add one: subclass ``BaseJudge`` with ``judge(items)`` (and ``chunk``/``config`` where it needs them),
declare ``kind`` (harm/refusal) and ``grade`` (standard/screening) on the class, and register it with
``@register_judge("name")`` (a third-party module via the ``tracesafe.judges`` entry-point group);
tests/test_judge_contract.py then checks it with every other judge.
"""

from ._base import BaseJudge, Judge, JudgeInfo, JudgeItem, JudgeResult, get_judge, list_judges, register_judge
from ._eval import evaluate_judge, load_gold
from ._run import SEGMENTS, run_judges

__all__ = [
    "BaseJudge", "Judge", "JudgeInfo", "JudgeItem", "JudgeResult", "SEGMENTS", "evaluate_judge", "get_judge",
    "list_judges", "load_gold", "register_judge", "run_judges",
]  # fmt: skip
