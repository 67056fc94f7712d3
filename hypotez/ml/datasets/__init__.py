"""Datasets: reading and validating example files, building from corrections and feedback, exporting in
OpenAI's fine-tuning formats, train/validation splits, and the catalog behind ``/dataset``.

Training code calls :func:`load_examples` (a dataset's examples as OpenAI fine-tuning records) and
:func:`split_examples`.

Modules: :mod:`~hypotez.ml.datasets.parsing` (the accepted files, described there), ``examples`` (chat examples,
preference pairs, builds from corrections and feedback), ``formats`` (fine-tuning records, CSV rows, splits),
``pricing`` (token and cost estimates), ``loading`` (records for training), ``catalog`` (``/dataset``).
"""

from __future__ import annotations

from hypotez.ml.datasets.catalog import BuildReport, DatasetCatalog, DatasetDescription, ExportResult, ImportReport
from hypotez.ml.datasets.examples import build_examples, chat_example, example_from_feedback, preference_example
from hypotez.ml.datasets.formats import EXPORT_FORMATS, csv_rows, preference_records, split_examples, supervised_records
from hypotez.ml.datasets.loading import load_examples
from hypotez.ml.datasets.parsing import SUPPORTED_SUFFIXES, ParsedFile, Problem, example_from_record, parse_file
from hypotez.ml.datasets.pricing import HOSTED_TRAINING_PRICES, record_tokens, training_costs

__all__ = [
    "EXPORT_FORMATS",
    "HOSTED_TRAINING_PRICES",
    "SUPPORTED_SUFFIXES",
    "BuildReport",
    "DatasetCatalog",
    "DatasetDescription",
    "ExportResult",
    "ImportReport",
    "ParsedFile",
    "Problem",
    "build_examples",
    "chat_example",
    "csv_rows",
    "example_from_feedback",
    "example_from_record",
    "load_examples",
    "parse_file",
    "preference_example",
    "preference_records",
    "record_tokens",
    "split_examples",
    "supervised_records",
    "training_costs",
]
