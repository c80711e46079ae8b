"""The one colour palette of every plot and screen: Okabe-Ito, distinguishable with every common
colour-vision deficiency."""

from __future__ import annotations

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#56B4E9",
    "#CC79A7",
    "#F0E442",
    "#000000",
)
"""Okabe-Ito colour-blind-safe palette (blue first)."""

#: Risk bands: blue, orange, vermillion.
BAND_COLOURS: dict[str, str] = {"low": OKABE_ITO[0], "medium": OKABE_ITO[1], "high": OKABE_ITO[3]}
