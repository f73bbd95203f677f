"""``kgpeft kge train | evaluate``: KG embeddings, as :mod:`kgpeft.kge.job` runs them.

``kgpeft kge train --config configs/kge/umls.yaml`` trains KG embeddings (:mod:`kgpeft.kge`) from a
config with the keys ``kg`` (a dataset name, a saved KG folder or a triples file), ``output`` (the
``.safetensors`` file to write) and ``kge`` (:class:`~kgpeft.kge.KGEConfig` settings; every one is
also an option, e.g. ``--num-epochs 5``); ``kgpeft kge evaluate --embeddings FILE --kg umls`` ranks a split.
"""

from __future__ import annotations

import argparse
import json

from kgpeft.kge.job import evaluate_kge_job, finite, format_ranks, per_relation_dict, train_kge_job


def cmd_kge_train(args: argparse.Namespace) -> None:
    overrides = {key: getattr(args, key) for key in ("kg", "output") if getattr(args, key)}
    overrides["kge"] = {name[len("kge.") :]: value for name, value in vars(args).items() if name.startswith("kge.")}
    train_kge_job(args.config, overrides, progress=args.progress)


def cmd_kge_evaluate(args: argparse.Namespace) -> None:
    done = evaluate_kge_job(args.embeddings, args.kg, args.split, batch_size=args.batch_size, device=args.device)
    if args.json:
        out = {"split": args.split, "embeddings": str(args.embeddings), "kg": args.kg, "metrics": done.result.summary()}
        if args.per_relation:
            out["per_relation"] = per_relation_dict(done.result)
        print(json.dumps(finite(out), indent=2))
        return
    c = done.embeddings.config
    print(f"{args.embeddings}: {c.model}, {c.hidden_channels} dims{', reciprocal' if c.reciprocal else ''}; {args.kg}")
    print(format_ranks(done.result, args.split, done.seconds, per_relation=args.per_relation))
