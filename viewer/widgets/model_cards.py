"""Help → AI models: the shipped models' cards (version, weights check, training, tests, limitations).

Display only: the cards come from :func:`inference.api.model_cards`, which
reads each model's metadata and checks its weights; this dialog lays them out.
The limitations come first after the title, because they are what a reader
must know before trusting a list of findings.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from inference.types import ModelCard
from viewer.widgets.identity_banner import PALETTE

__all__ = ["ModelCardsDialog", "cards_html"]


def _card_html(c: ModelCard) -> str:
    e = html.escape
    out = [f"<h2 style='margin-bottom:2px'>{e(c.name)} <span style='color:{PALETTE['muted']}'>v{e(c.version)}</span></h2>"]
    if c.problem:
        return "".join(out) + f"<p style='color:{PALETTE['red']}'><b>Cannot be read:</b> {e(c.problem)}</p>"
    colour = PALETTE["red"] if c.weights_check.startswith("MISMATCH") else PALETTE["muted"]
    out.append(f"<p style='color:{colour}; margin-top:0'>Weights: {e(c.weights_check)}</p>")
    if c.intended_use:
        out.append(f"<p><b>Intended use:</b> {e(c.intended_use)}</p>")
    if c.limitations:
        items = "".join(f"<li>{e(x)}</li>" for x in c.limitations)
        out.append(f"<div style='background:{PALETTE['amber_bg']}; padding:6px'><b style='color:{PALETTE['amber']}'>"
                   f"Limitations</b><ul style='margin-top:2px'>{items}</ul></div>")
    if c.task:
        out.append(f"<p><b>Task:</b> {e(c.task)}</p>")
    for title, lines in c.sections.items():
        items = "".join(f"<li>{e(x)}</li>" for x in lines)
        out.append(f"<p style='margin-bottom:0'><b>{e(title)}</b></p><ul style='margin-top:2px'>{items}</ul>")
    return "".join(out)


def cards_html(cards: list[ModelCard]) -> str:
    """The cards as one HTML page (the nodule model first: its findings are what the reader reviews)."""
    # the detector first, its second reader next to it, then the rest by name
    order = sorted(cards, key=lambda c: (c.name != "nodules", not c.name.startswith("nodules"), c.name))
    body = "<hr>".join(_card_html(c) for c in order) or "<p>No models found in resources/models.</p>"
    return (f"<div style='color:{PALETTE['text']}'><p style='color:{PALETTE['muted']}'>Every AI number in clinview "
            f"names the model version that made it. These are those models, as measured; decision support only."
            f"</p>{body}</div>")


class ModelCardsDialog(QDialog):
    """The AI models' cards in a scrollable page, with a Close button."""

    def __init__(self, cards: list[ModelCard], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("AI models")
        self.resize(760, 720)
        lay = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(cards_html(cards))
        lay.addWidget(self.browser, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
