"""The one road from a job config to numbers: :func:`prepare`, :func:`train_variant`,
:func:`evaluate_variant`, :func:`run`. ``kgpeft train | evaluate | predict | demo`` and the
benchmarks that train models all come through here."""

from kgpeft.pipeline.config import TASK_TYPES, JobConfig, JobConfigError, Variant
from kgpeft.pipeline.job import (
    Job,
    TrainedVariant,
    build_model,
    evaluate_variant,
    load_base_model,
    load_examples,
    load_kg,
    load_variant_model,
    prepare,
    train_variant,
)
from kgpeft.pipeline.run import JobResults, VariantResult, run, train_job

__all__ = [
    "TASK_TYPES",
    "Job",
    "JobConfig",
    "JobConfigError",
    "JobResults",
    "TrainedVariant",
    "Variant",
    "VariantResult",
    "build_model",
    "evaluate_variant",
    "load_base_model",
    "load_examples",
    "load_kg",
    "load_variant_model",
    "prepare",
    "run",
    "train_job",
    "train_variant",
]
