"""The seed control every generating panel shows: a spin box and a button for a fresh seed.

One helper so that seeds look and behave the same in every plugin (the full 31-bit range can be
typed; the button draws a short, easy-to-note number).
"""

from __future__ import annotations

import random

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QSpinBox

SEED_MAX = 2**31 - 1


def seed_spin(value: int = 0) -> QSpinBox:
    """A spin box over the whole seed range."""
    spin = QSpinBox()
    spin.setRange(0, SEED_MAX)
    spin.setValue(value)
    return spin


def seed_button(spin: QSpinBox, text: str = "Random") -> QPushButton:
    """A button that puts a fresh seed into ``spin``."""
    button = QPushButton(text)
    button.setToolTip("A new random seed")
    button.clicked.connect(lambda: spin.setValue(random.randint(0, 999_999)))
    return button


def seed_row(value: int = 1, text: str = "Random") -> tuple[QSpinBox, QHBoxLayout]:
    """A seed spin box and its fresh-seed button in one row (the spin box stretched)."""
    spin = seed_spin(value)
    row = QHBoxLayout()
    row.addWidget(spin, 1)
    row.addWidget(seed_button(spin, text))
    return spin, row
