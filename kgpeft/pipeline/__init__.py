"""The one road from a job config to numbers: :func:`prepare`, :func:`train_variant`,
:func:`evaluate_variant`, :func:`run`. ``kgpeft train | evaluate | predict | demo`` and the
benchmarks that train models all come through here.

- :mod:`~kgpeft.pipeline.config`: :class:`JobConfig` and :class:`Variant`, read from YAML.
- :mod:`~kgpeft.pipeline.variants`: the variant kinds (``none``, ``lora``, ``kg-lora``) as objects.
- :mod:`~kgpeft.pipeline.examples`: a job's examples (a registered task or a task file).
- :mod:`~kgpeft.pipeline.base_model`: the base model's folder checked, then loaded.
- :mod:`~kgpeft.pipeline.budgets`: the token budgets (``max_length``, ``retrieval.max_fact_tokens``),
  derived from the job's rows unless set, and ``budgets.json``.
- :mod:`~kgpeft.pipeline.job`: :class:`Job` and :func:`prepare` (with the fact scorer).
- :mod:`~kgpeft.pipeline.train` and :mod:`~kgpeft.pipeline.evaluate`: one variant trained, loaded, scored.
- :mod:`~kgpeft.pipeline.run`: every variant under every control, the table and ``results.json``.
- :mod:`~kgpeft.pipeline.answer`: how a variant's facts are chosen, saved with its adapter, so that the
  adapter folder alone answers as the job did (:func:`predict`).
"""

from kgpeft.pipeline.answer import predict
from kgpeft.pipeline.base_model import load_base_model
from kgpeft.pipeline.config import JobConfig, JobConfigError, Variant
from kgpeft.pipeline.evaluate import evaluate_variant
from kgpeft.pipeline.examples import load_examples
from kgpeft.pipeline.job import Job, prepare
from kgpeft.pipeline.run import JobResults, VariantResult, run, train_job
from kgpeft.pipeline.train import TrainedVariant, build_model, load_variant_model, train_variant
from kgpeft.pipeline.variants import VARIANT_KINDS, VariantKind

__all__ = [
    "VARIANT_KINDS",
    "Job",
    "JobConfig",
    "JobConfigError",
    "JobResults",
    "TrainedVariant",
    "Variant",
    "VariantKind",
    "VariantResult",
    "build_model",
    "evaluate_variant",
    "load_base_model",
    "load_examples",
    "load_variant_model",
    "predict",
    "prepare",
    "run",
    "train_job",
    "train_variant",
]
