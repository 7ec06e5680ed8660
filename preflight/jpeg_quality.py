"""Estimate the JPEG quality factor from the quantisation tables.

Least-squares match against the IJG-scaled tables of ITU-T T.81 Annex K (the method of
van der Knijff, KB NL, 2024): for each quality 1..100 build the tables libjpeg would write and keep
the closest one. Exact for libjpeg, Pillow and OpenCV files; for custom tables (phones, Photoshop)
it gives the nearest IJG equivalent, and :attr:`QualityEstimate.fit` says how well it matches.
ImageMagick's hash-table heuristic is known to be wrong even for standard tables, so we avoid it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), in natural (row-major) order.
_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)
_CHROMA = np.array(
    [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
     24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
     99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
     99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99],
    dtype=np.float64,
)


@dataclass(frozen=True)
class QualityEstimate:
    """The estimated quality (1..100) and how well the tables fit the IJG family (1.0 = exact)."""

    quality: int
    fit: float
    exact: bool


@cache
def _scaled_tables() -> tuple[np.ndarray, np.ndarray]:
    """IJG tables for quality 1..100, shape (100, 64), with baseline clamping to 1..255."""
    q = np.arange(1, 101, dtype=np.float64)[:, None]
    scale = np.where(q < 50, np.floor(5000.0 / q), 200.0 - 2.0 * q)
    luma = np.clip(np.floor((_LUMA[None, :] * scale + 50.0) / 100.0), 1, 255)
    chroma = np.clip(np.floor((_CHROMA[None, :] * scale + 50.0) / 100.0), 1, 255)
    return luma, chroma


def estimate_quality(tables: Mapping[int, Sequence[int]] | Sequence[Sequence[int]]) -> QualityEstimate | None:
    """Estimate the quality from quantisation tables in natural order (Pillow's ``image.quantization``).

    Table 0 is matched against the luminance family and table 1 (if any) against chrominance.
    Returns ``None`` when there are no usable 64-entry tables.
    """
    seq = [tables[k] for k in sorted(tables)] if isinstance(tables, Mapping) else list(tables)
    usable = [np.asarray(t, dtype=np.float64) for t in seq[:2] if len(t) == 64]
    if not usable:
        return None
    luma, chroma = _scaled_tables()
    err = ((luma - usable[0][None, :]) ** 2).sum(axis=1)
    if len(usable) > 1:
        err = err + ((chroma - usable[1][None, :]) ** 2).sum(axis=1)
    best = int(np.argmin(err))
    # Nash-Sutcliffe efficiency of the fit on the concatenated tables: 1 = exact.
    observed = np.concatenate(usable)
    modelled = np.concatenate([luma[best], chroma[best]][: len(usable)])
    denom = float(((observed - observed.mean()) ** 2).sum())
    fit = 1.0 - float(((observed - modelled) ** 2).sum()) / denom if denom > 0 else float(err[best] == 0)
    return QualityEstimate(quality=best + 1, fit=round(fit, 4), exact=bool(err[best] == 0))
