"""Widgets bound to a job's params dataclass: one line per field in a panel.

A panel keeps one :class:`Form` per params class and asks it for the widget of each field it
shows, where it wants it::

    self.form = Form(GenerateParams, self, host.recall("generate", GenerateParams))
    self.form.add_rows(layout, "method", "width", "height", "seed")
    ...
    host.submit("generate", self.form.value(base=self.document.level))

The widget's range, special value, suffix, choices and tooltip come from the field's
declaration (``studio.params``), so they cannot drift from the command line's checks; the form
keeps ``form.p`` (the live params object) in step with the widgets both ways (Orange3's
``Setting`` + ``gui.spin``, typed). ``value()`` returns a checked copy, with the fields only the
panel knows (the level being edited, a region) filled in.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from studio import params as params_mod
from studio.params import Param, ParamError
from studio.widgets.seed import SEED_MAX, seed_button

INT_LIMIT = 2**31 - 1


class Form(QObject):
    """The widgets of one params class, bound two-way to ``self.p``.

    Args:
        cls: the params dataclass.
        parent: the widget that owns the editors (dialogs open over it).
        values: starting values (an instance, e.g. ``host.recall(job, cls)``; default: the
            class's defaults).
    """

    #: a field's value changed in its widget (not when set from code)
    changed = Signal(str)

    def __init__(self, cls: type, parent: QWidget, values: Any = None) -> None:
        super().__init__(parent)
        self.cls = cls
        self.parent_widget = parent
        self.p: Any = dataclasses.replace(values) if values is not None else \
            params_mod.blank(cls)
        self.params: dict[str, Param] = {p.name: p for p in params_mod.describe(cls)}
        self._rows: dict[str, QWidget] = {}
        self._editors: dict[str, QWidget] = {}
        self._setters: dict[str, Callable[[Any], None]] = {}
        self._loading = False

    # -- building -------------------------------------------------------------------------------
    def param(self, name: str) -> Param:
        try:
            return self.params[name]
        except KeyError:
            raise KeyError(f"{self.cls.__name__} has no field {name!r}") from None

    def label(self, name: str) -> str:
        return self.param(name).label + ":"

    def widget(self, name: str) -> QWidget:
        """The widget to put in a layout for ``name`` (built once; a row of several widgets
        for paths and seeds)."""
        if name not in self._rows:
            self._build(self.param(name))
        return self._rows[name]

    def editor(self, name: str) -> QWidget:
        """The editing widget itself (the spin box of a seed row, the line of a path row)."""
        self.widget(name)
        return self._editors[name]

    def add_rows(self, layout: QFormLayout, *names: str) -> None:
        """One row per field: its label and widget (a check box carries its own label)."""
        for name in names:
            w = self.widget(name)
            if isinstance(w, QCheckBox):
                layout.addRow(w)
            else:
                layout.addRow(self.label(name), w)

    def _build(self, p: Param) -> None:
        hint = p.widget.kind if p.widget else ""
        value = getattr(self.p, p.name)
        if p.codec is not None or hint == "hidden":
            raise ValueError(f"{p.name} is supplied by the panel (value(**{p.name}=...)), "
                             "it has no widget")
        if p.kind is bool:
            box = QCheckBox(p.label)
            box.setChecked(bool(value))
            box.toggled.connect(lambda v, n=p.name: self._edited(n, bool(v)))
            self._register(p, box, box, box.setChecked)
        elif p.choices:
            combo = QComboBox()
            for c in p.choices:
                combo.addItem(p.choice_label(c), c)
            if p.optional:
                combo.addItem(p.special or "default", None)

            def set_combo(v: Any, combo: QComboBox = combo) -> None:
                i = combo.findData(v)
                combo.setCurrentIndex(max(0, i))

            set_combo(value)
            combo.currentIndexChanged.connect(
                lambda _i, n=p.name, c=combo: self._edited(n, c.currentData()))
            self._register(p, combo, combo, set_combo)
        elif hint == "seed":
            spin = QSpinBox()
            spin.setRange(0, SEED_MAX)
            spin.setValue(int(value or 0))
            spin.valueChanged.connect(functools.partial(self._edited_int, p.name))
            row = _row(spin, seed_button(spin))
            self._register(p, row, spin, functools.partial(_set_int, spin))
        elif hint == "slider" and p.kind in (int, float):
            self._slider(p, value)
        elif p.kind is int:
            self._number(p, QSpinBox(), value)
        elif p.kind is float:
            self._number(p, QDoubleSpinBox(), value)
        elif p.widget is not None and p.widget.suggestions:
            combo = QComboBox()
            combo.setEditable(True)
            combo.addItems(list(p.widget.suggestions))
            combo.setCurrentText(_text(value))
            combo.currentTextChanged.connect(functools.partial(self._edited_combo, p.name))
            self._register(p, combo, combo, functools.partial(_set_combo_text, combo))
        elif hint == "model":
            from studio.widgets.modelpicker import ModelPicker

            picker = ModelPicker(kinds=p.widget.kinds if p.widget else ())
            picker.set_path(value)
            picker.path_changed.connect(lambda v, n=p.name: self._edited(n, v))
            self._register(p, picker, picker, picker.set_path)
        elif p.kind is Path or hint in ("folder", "file", "save"):
            line = QLineEdit("" if value is None else str(value))
            line.setPlaceholderText(p.special)
            line.editingFinished.connect(functools.partial(self._edited_text, p.name, line))
            btn = QPushButton("…")
            btn.setMaximumWidth(32)
            btn.setToolTip(f"Choose {p.label.lower()}")
            btn.setAccessibleName(f"Choose {p.label.lower()}")
            btn.clicked.connect(functools.partial(self._browse, p, line))
            self._register(p, _row(line, btn), line, functools.partial(_set_line, line))
        elif hint == "text":
            edit = QPlainTextEdit("" if value is None else str(value))
            edit.setPlaceholderText(p.special)
            edit.setTabChangesFocus(True)  # a prompt box must not trap the keyboard
            edit.textChanged.connect(functools.partial(self._edited_plain, p.name, edit))
            self._register(p, edit, edit, functools.partial(_set_plain, edit))
        else:
            line = QLineEdit(_text(value))
            line.setPlaceholderText(p.special)
            line.editingFinished.connect(functools.partial(self._edited_text, p.name, line))
            self._register(p, line, line, functools.partial(_set_line, line))

    def _number(self, p: Param, spin: QSpinBox | QDoubleSpinBox, value: Any) -> None:
        r = p.range or params_mod.Range()
        is_int = isinstance(spin, QSpinBox)
        step = r.step or (1 if is_int else _default_step(r))
        lo = r.lo if r.lo is not None else (-INT_LIMIT if is_int else -1e12)
        hi = r.hi if r.hi is not None else (INT_LIMIT if is_int else 1e12)
        none_value = lo - step if p.optional else None  # one step below: "None"
        if isinstance(spin, QDoubleSpinBox):
            spin.setDecimals(_decimals(step))
        spin.setRange(none_value if none_value is not None else lo, hi)  # type: ignore[arg-type]
        spin.setSingleStep(step)  # type: ignore[arg-type]
        if p.special:
            spin.setSpecialValueText(p.special)
        if p.unit:
            spin.setSuffix(p.unit)

        def set_spin(v: Any, spin: Any = spin) -> None:
            spin.setValue(none_value if v is None and none_value is not None else
                          (v if v is not None else lo))

        def read(v: Any) -> Any:
            if none_value is not None and v <= none_value + step / 2:
                return None
            return int(v) if is_int else float(v)

        set_spin(value)
        spin.valueChanged.connect(lambda v, n=p.name: self._edited(n, read(v)))
        self._register(p, spin, spin, set_spin)

    def _slider(self, p: Param, value: Any) -> None:
        """A labelled slider over the field's range (superqt): for values people judge by
        feel (strength, temperature) rather than type."""
        from superqt import QLabeledDoubleSlider, QLabeledSlider

        r = p.range or params_mod.Range(0, 1)
        lo = r.lo if r.lo is not None else 0
        hi = r.hi if r.hi is not None else 1
        slider: Any
        if p.kind is int:
            slider = QLabeledSlider(Qt.Orientation.Horizontal)
            slider.setRange(int(lo), int(hi))
        else:
            slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
            slider.setRange(float(lo), float(hi))
            step = r.step or _default_step(r)
            slider.setSingleStep(step)
            slider.setDecimals(_decimals(step))
        slider.setValue(value if value is not None else lo)
        slider.valueChanged.connect(functools.partial(self._edited_number, p.name, p.kind))
        self._register(p, slider, slider, slider.setValue)

    def _register(self, p: Param, row: QWidget, editor: QWidget,
                  setter: Callable[[Any], None]) -> None:
        if p.help:
            editor.setToolTip(p.help)
            row.setToolTip(p.help)
        editor.setAccessibleName(p.label)
        self._rows[p.name] = row
        self._editors[p.name] = editor
        self._setters[p.name] = setter

    def _browse(self, p: Param, line: QLineEdit, *_args: Any) -> None:
        kind = p.widget.kind if p.widget else ("folder" if p.kind is Path else "file")
        start = line.text()
        caption = p.label
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(self.parent_widget, caption, start)
        elif kind == "save":
            path, _filter = QFileDialog.getSaveFileName(self.parent_widget, caption, start,
                                                        p.widget.filter if p.widget else "")
        else:
            path, _filter = QFileDialog.getOpenFileName(self.parent_widget, caption, start,
                                                        p.widget.filter if p.widget else "")
        if path:
            line.setText(path)
            self._edited_text(p.name, line)

    # -- values ---------------------------------------------------------------------------------
    def _edited(self, name: str, value: Any) -> None:
        if self._loading:
            return
        setattr(self.p, name, value)
        self.changed.emit(name)

    def _edited_number(self, name: str, kind: type, value: Any) -> None:
        self._edited(name, kind(value))

    def _edited_combo(self, name: str, text: str) -> None:
        self._edited(name, text.strip())

    def _edited_int(self, name: str, value: int) -> None:
        self._edited(name, int(value))

    def _edited_plain(self, name: str, edit: QPlainTextEdit) -> None:
        self._edited(name, edit.toPlainText())

    def _edited_text(self, name: str, line: QLineEdit) -> None:
        p = self.param(name)
        text = line.text().strip()
        if not text:
            value: Any = None if (p.optional or p.required or p.kind is Path) else p.default
        elif p.kind is list:
            value = [s.strip() for s in text.split(",") if s.strip()]
        elif p.kind is Path:
            value = Path(text).expanduser()
        else:
            value = text
        if getattr(self.p, name) != value:
            self._edited(name, value)

    def set(self, values: Any) -> None:
        """Show other values (an instance, or remembered JSON from a reopened run); fields
        without a widget take the new value too. Does not emit :attr:`changed`."""
        if isinstance(values, Mapping):
            values = params_mod.from_json(self.cls, values)
        self._loading = True
        try:
            for name in self.params:
                v = getattr(values, name)
                setattr(self.p, name, v)
                if name in self._setters:
                    self._setters[name](v)
        finally:
            self._loading = False

    def set_value(self, name: str, value: Any) -> None:
        """Change one field from code (the widget follows; :attr:`changed` is not emitted)."""
        setattr(self.p, name, value)
        if name in self._setters:
            self._loading = True
            try:
                self._setters[name](value)
            finally:
                self._loading = False

    def value(self, **overrides: Any) -> Any:
        """A checked copy of the params with ``overrides`` (the fields the panel supplies);
        raises :class:`~studio.params.ParamError` (``.gui`` is the message for the window)."""
        obj = dataclasses.replace(self.p, **overrides)
        try:
            return params_mod.validate(obj)
        except ParamError as exc:
            editor = self._editors.get(exc.param.name)
            if editor is not None:
                editor.setFocus()
            raise

    def checked(self, status: QLabel | None = None, **overrides: Any) -> Any | None:
        """:meth:`value`, or None after showing what is wrong in ``status``."""
        try:
            return self.value(**overrides)
        except ParamError as exc:
            if status is not None:
                status.setText(f"⚠ {exc.gui}")
            return None
        except params_mod.UserError as exc:  # a rule between fields (the class's rules())
            if status is not None:
                status.setText(f"⚠ {exc}")
            return None


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    for i, w in enumerate(widgets):
        lay.addWidget(w, 1 if i == 0 else 0)
    return box


def _set_int(spin: QSpinBox, value: Any) -> None:
    spin.setValue(int(value or 0))


def _set_combo_text(combo: QComboBox, value: Any) -> None:
    combo.setCurrentText(_text(value))


def _set_line(line: QLineEdit, value: Any) -> None:
    line.setText(_text(value))


def _set_plain(edit: QPlainTextEdit, value: Any) -> None:
    edit.setPlainText(_text(value))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def _default_step(r: params_mod.Range) -> float:
    if r.lo is not None and r.hi is not None and r.hi > r.lo:
        return float(10 ** math.floor(math.log10((r.hi - r.lo) / 100)))
    return 0.1


def _decimals(step: float) -> int:
    if step >= 1:
        return 0
    return min(8, max(1, -math.floor(math.log10(step) + 1e-9)))
