"""Predictor traffic with ground-truth feedback, as a client application would send it."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import requests

from .data import FEATURES, DriftingSource


@dataclass
class Tally:
    """Client-side accuracy per phase of the demo (what the users of the model saw)."""

    labeled: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def accuracy(self, phase: str) -> float | None:
        return self.correct[phase] / self.labeled[phase] if self.labeled[phase] else None


class TrafficDriver:
    """Sends batches of instances to :predict and their true labels to :feedback."""

    def __init__(self, predictor_url: str, model: str, source: DriftingSource,
                 batch: int = 10, pause_s: float = 0.05) -> None:
        self._predict = f"{predictor_url.rstrip('/')}/v1/models/{model}:predict"
        self._feedback = f"{predictor_url.rstrip('/')}/v1/models/{model}:feedback"
        self._source = source
        self._batch = batch
        self._pause_s = pause_s
        self.phase = "warm-up"
        self.tally = Tally()
        self._stop = threading.Event()
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._drive, name="demo-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _drive(self) -> None:
        # The pause is the client's request rate, not a synchronisation.
        while not self._stop.wait(self._pause_s):
            phase = self.phase
            x, y = self._source.sample(self._batch)
            try:
                self._send(phase, x, y)
            except requests.RequestException as error:
                self.tally.errors[type(error).__name__] += 1

    def _send(self, phase: str, x: np.ndarray, y: np.ndarray) -> None:
        instances = [dict(zip(FEATURES, map(float, row), strict=True)) for row in x]
        answer = self._session.post(self._predict, json={"instances": instances}, timeout=30)
        if answer.status_code != 200:
            self.tally.errors[f"predict {answer.status_code}"] += 1
            return
        body = answer.json()
        for prediction_id, label in zip(body["ids"], y, strict=True):
            sent = self._session.post(self._feedback, json={"id": prediction_id,
                                                            "label": int(label)}, timeout=30)
            if sent.status_code != 200:
                self.tally.errors[f"feedback {sent.status_code}"] += 1
                continue
            self.tally.labeled[phase] += 1
            self.tally.correct[phase] += bool(sent.json().get("correct"))
