"""A sentence-transformers model run by PyTorch with bfloat16 autocast on the CPU.

On CPUs with native bf16 matrix instructions (AVX512-BF16 or AMX) the matrix products run at about twice
the float32 rate, while LayerNorm, softmax and accumulation stay float32 under autocast, so vectors agree
with the float32 model to cosine ≥ 0.9999 (a test checks ≥ 0.999). Float32 cannot reach a 1.5× speed-up
over sentence-transformers on 2 cores: it already runs at ~65% of the float32 peak (see
benchmarks/RESULTS.md). The autocast context spans all batches so weights are cast once, not per batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retrievo._optional import require
from retrievo.encoders._bucketed import BucketedEncoder
from retrievo.encoders.base import default_threads

__all__ = ["Bf16SentenceEncoder", "cpu_has_bf16"]


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (Linux /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


class Bf16SentenceEncoder(BucketedEncoder):
    """Length-bucketed encoding with a Hugging Face model under ``torch.autocast(bfloat16)``."""

    def __init__(self, path: str, max_seq_length: int | None = None, threads: int | None = None) -> None:
        super().__init__(path, max_seq_length)
        torch = require("torch")
        transformers = require("transformers")
        self.torch = torch
        self.threads = int(threads or default_threads())
        self.model = transformers.AutoModel.from_pretrained(str(self.tdir), attn_implementation="sdpa").eval()
        import inspect

        self.takes_types = "token_type_ids" in inspect.signature(self.model.forward).parameters

    def _forward(self, batches):
        torch = self.torch
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            for input_ids, mask in batches:
                ids_t = torch.from_numpy(input_ids)
                kw = {"token_type_ids": torch.zeros_like(ids_t)} if self.takes_types else {}
                out = self.model(input_ids=ids_t, attention_mask=torch.from_numpy(mask), **kw).last_hidden_state
                yield out.float().numpy()

    def encode(self, texts: list[str], batch_size: int = 8, show_progress: bool = False) -> np.ndarray:
        return super().encode(texts, batch_size=batch_size, show_progress=show_progress)
