"""The training run both trainers share: sentence-transformers' trainer with held-out evaluation, the best
checkpoint kept, early stopping, a time budget, the losses recorded, bfloat16 where the CPU has it."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FitResult", "check_settings", "fit", "require_trainer"]


@dataclass
class FitResult:
    steps: int
    seconds: float
    stopped_by_budget: bool
    best_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)


def require_trainer() -> Any:
    """sentence-transformers with its training extra (``datasets``, ``accelerate``); the module."""
    from retrievo._optional import require

    st = require("sentence_transformers", package="sentence-transformers")
    require("datasets", package="sentence-transformers[train]")
    require("accelerate", package="sentence-transformers[train]")
    return st


def check_settings(what: str, **settings: tuple[float, float]) -> None:
    """Each ``name=(value, lowest allowed)``; :class:`~retrievo.errors.InvalidInputError` naming the first below."""
    from retrievo.errors import InvalidInputError

    for name, (value, lowest) in settings.items():
        if not value >= lowest:
            raise InvalidInputError(f"{what}: {name} must be >= {lowest}, got {value}")


def fit(trainer_cls: Any, args_cls: Any, *, model: Any, train_dataset: Any, loss: Any, evaluator: Any, metric: str,
        where: Path, epochs: float, batch_size: int, lr: float, bf16: bool, seed: int, evals: int,
        time_budget: float | None, show_progress: bool, **extra_args: Any) -> FitResult:
    """Train ``model`` with ``trainer_cls`` / ``args_cls`` (a sentence-transformers trainer and its arguments),
    evaluating ``evals`` times on ``evaluator`` (``metric``: the key it reports, higher is better) and ending
    with the best checkpoint loaded; checkpoints live in a temporary folder inside ``where``."""
    from transformers import EarlyStoppingCallback, TrainerCallback

    steps_total = int(np.ceil(len(train_dataset) / batch_size) * epochs)
    every = max(1, steps_total // max(1, evals))
    started = time.monotonic()
    losses: list[tuple[int, float]] = []
    budget_hit = [False]

    class Budget(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if time_budget is not None and time.monotonic() - started > time_budget:
                budget_hit[0] = True
                control.should_training_stop = True
                control.should_evaluate = control.should_save = True  # the last state competes for best
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append((int(state.global_step), round(float(logs["loss"]), 5)))

    with tempfile.TemporaryDirectory(dir=where, prefix=".checkpoints-") as ckpts:
        targs = args_cls(
            output_dir=ckpts, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size, learning_rate=lr, warmup_steps=max(1, steps_total // 10),
            weight_decay=0.01, lr_scheduler_type="linear", bf16=bf16, use_cpu=True, seed=seed, data_seed=seed,
            eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every, save_total_limit=2,
            load_best_model_at_end=True, metric_for_best_model=f"eval_{metric}", greater_is_better=True,
            logging_steps=max(1, min(10, every)), report_to="none", disable_tqdm=not show_progress,
            dataloader_num_workers=0, save_only_model=True, **extra_args)
        trainer = trainer_cls(model=model, args=targs, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
                              callbacks=[Budget(), EarlyStoppingCallback(early_stopping_patience=2)])
        trainer.train()
        ckpt = trainer.state.best_model_checkpoint
        return FitResult(steps=int(trainer.state.global_step), seconds=round(time.monotonic() - started, 1),
                         stopped_by_budget=budget_hit[0], losses=losses,
                         best_step=int(Path(ckpt).name.rsplit("-", 1)[-1]) if ckpt else 0)
