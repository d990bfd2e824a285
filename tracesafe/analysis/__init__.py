"""Metrics for the report: rates with confidence intervals, paired thinking-vs-answer tests, SafeChain @K
metrics, refusal, judge agreement, lengths and harm onset. Pure pandas / numpy / scipy / pyarrow.

``load`` reads trace files, ``verdicts`` verdict files, ``dataset`` joins them (``Data``), ``tables`` computes every report
table (``TABLES``, in report order), ``stats`` holds the statistics, ``corrections`` the judge-card
correction and ``compare`` the comparison of runs.
"""

from .compare import compare_table
from .corrections import apply_cards, drop_unmatched_cards
from .dataset import SCREENING_JUDGES, Data, is_screening, prepare
from .load import NONE, UNSAFE_CHUNK, load_traces
from .verdicts import load_verdicts
from .stats import (
                    Z95,
                    cohen_kappa,
                    holm,
                    mcnemar_exact_p,
                    newcombe_diff_ci,
                    newcombe_paired_ci,
                    wilson_ci,
                    with_rate,
)
from .tables import (
                    TABLES,
                    agreement_table,
                    all_tables,
                    at_k_table,
                    category_table,
                    harmfulness_table,
                    length_bins_table,
                    lengths_table,
                    onset_table,
                    onset_values,
                    paired_table,
                    refusal_table,
                    summary_table,
)

__all__ = [
    "NONE", "SCREENING_JUDGES", "TABLES", "UNSAFE_CHUNK", "Z95", "Data", "agreement_table", "all_tables",
    "apply_cards", "drop_unmatched_cards", "at_k_table", "category_table", "cohen_kappa", "compare_table", "harmfulness_table", "holm",
    "is_screening", "length_bins_table", "lengths_table", "load_traces", "load_verdicts", "mcnemar_exact_p",
    "newcombe_diff_ci", "newcombe_paired_ci", "onset_table", "onset_values", "paired_table", "prepare",
    "refusal_table", "summary_table", "wilson_ci", "with_rate",
]
