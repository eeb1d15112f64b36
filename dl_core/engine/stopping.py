"""When a run should stop, and when it has gone wrong (TrainingJob's mixin): blown up (a loss
that is not finite: the last good weights come back), or collapsed without blowing up.
Each rule reads the metrics it needs if the trainer reports them, and stays quiet otherwise.

Three stops the learner chooses: a number of epochs (`max_epochs`, in job.py), a goal for
the held-out accuracy or loss, and early stopping (no progress for `patience` epochs). And one
thing no stop rule catches: a collapse. A run at ~100 % that a too-large step throws off its
minimum can sit at chance with finite losses, so divergence (inf/NaN) never fires; a learner
watching the network diagram may not notice the accuracy curve at all. So the job keeps the
weights of its best epoch and, when the held-out score falls far from it (to chance, or a loss
ten times its best) and stays there, says so in plain words with those weights on offer.
"""
from __future__ import annotations

import math

COLLAPSE_EPOCHS = 5  # epochs in a row far below the peak before the job speaks up (one bad epoch is noise)
MIN_PEAK_GAIN = 0.3  # the peak must be this share of the way from chance to 100 % (there was something to lose)


class Stopping:
    """Stop rules and collapse watching for TrainingJob; see the module docstring."""

    def _finish(self, message: str) -> None:
        with self._cond:
            self._want_run, self._budget = False, 0
            self.state, self.message = "finished", message
            self._emit("finished", message)

    def _diverged(self, step: int, value: float) -> None:
        """Put the last good weights back and explain; the learner can lower the rate and go on."""
        self._load(self._good_state)
        with self.lock:
            self._new_optimizers()
        self.trainer.running_metrics()  # this epoch's sums are spoilt
        kind = "NaN (not a number)" if math.isnan(value) else "infinite"
        with self._cond:
            self.step = step - 1
            self._want_run, self._budget = False, 0
            self.state = "failed"
            self.message = (f"Learning rate too high: the loss exploded (became {kind}) at step {step}, "
                            f"epoch {self.epoch + 1}. Each update overshot the minimum by more than the last, so "
                            f"the weights blew up. The model was put back to its weights at the end of epoch "
                            f"{self.epoch}; lower the learning rate (now {self.config.lr:g}) and train again.")
            self._emit("failed", self.message)
        self._pos = 0
        self._order = self._new_order()

    def _stopped_early(self) -> bool:
        """Early stopping: keep the best validation weights; stop after `patience` epochs without progress."""
        patience, loss = self.config.early_stop_patience, self._history.epochs[-1].get("test_loss")
        if not patience or loss is None:
            return False
        if self._best is None or loss < self._best[0]:
            self._best = (loss, self.epoch, self._weights())
            return False
        if self.epoch - self._best[1] < patience:
            return False
        self._load(self._best[2])
        self._finish(f"Stopped early at epoch {self.epoch}: the validation loss has not improved for {patience} "
                     f"epochs, a sign the network has started to overfit. The weights from epoch {self._best[1]} "
                     "(the best so far) are back in place.")
        return True

    def _reached_goal(self) -> bool:
        """Stop (finished) once the held-out accuracy or loss reaches the goal the learner set."""
        last, cfg = self._history.epochs[-1], self.config
        acc, loss = last.get("test_acc"), last.get("test_loss")
        if cfg.target_acc is not None and acc is not None and acc >= cfg.target_acc:
            self._finish(f"Goal reached at epoch {self.epoch}: test accuracy {acc:.1%} (the goal was "
                         f"{cfg.target_acc:.0%}).")
            return True
        if cfg.target_loss is not None and loss is not None and loss <= cfg.target_loss:
            self._finish(f"Goal reached at epoch {self.epoch}: test loss {loss:.3g} (the goal was "
                         f"{cfg.target_loss:g}).")
            return True
        return False

    # ---- collapse ----
    def _score(self, epoch: dict) -> tuple[float, bool] | None:
        """(score, higher is better) of an epoch: held-out accuracy for classes, else its loss."""
        if epoch.get("test_acc") is not None:
            return epoch["test_acc"], True
        if epoch.get("test_loss") is not None:
            return epoch["test_loss"], False
        return None

    def _collapsed(self, now: float, peak: float, higher: bool) -> bool:
        """Far from the peak: accuracy back near chance (or lost most of its gain over chance),
        or a loss at least ten times its best (and not merely 0.001 → 0.01)."""
        if higher:
            chance = getattr(self.trainer, "chance", None) or 0.0
            gain = peak - chance
            return gain >= MIN_PEAK_GAIN * (1 - chance) and now <= chance + 0.25 * gain
        return now >= 10 * peak and now - peak >= 0.1

    def _watch_collapse(self) -> None:
        """After each epoch: keep the best weights; speak up once the run has sat far below them
        for COLLAPSE_EPOCHS epochs; fall silent again when it recovers."""
        scored = self._score(self._history.epochs[-1])
        if scored is None:
            return
        now, higher = scored
        better = lambda a, b: a > b if higher else a < b  # noqa: E731
        if self._peak is None or better(now, self._peak[0]):
            self._peak = (now, self.epoch, self._weights())
            self._low_epochs, self.collapse = 0, None
            return
        peak, at = self._peak[0], self._peak[1]
        self._low_epochs = self._low_epochs + 1 if self._collapsed(now, peak, higher) else 0
        if self._low_epochs == 0:
            self.collapse = None
        elif self._low_epochs == COLLAPSE_EPOCHS and self.collapse is None:
            what = (f"test accuracy fell from {peak:.0%} (epoch {at}) to {now:.0%}" if higher else
                    f"test loss rose from {peak:.3g} (epoch {at}) to {now:.3g}")
            chance = getattr(self.trainer, "chance", None)
            near = f", about what guessing gets ({chance:.0%})" if higher and chance else ""
            self.collapse = {"epoch": self.epoch, "peak_epoch": at, "message": (
                f"Training collapsed: the {what}{near}, and has stayed there for {COLLAPSE_EPOCHS} epochs. A step "
                "too large can throw a trained network off its minimum into a region it does not climb out of; "
                f"the loss stayed finite, so nothing blew up. The weights from epoch {at} are kept: bring them "
                "back, lower the learning rate, and train on.")}
            with self._cond:
                self._emit("collapse", self.collapse["message"], dict(self.collapse))

    def restore_peak(self) -> int | None:
        """Put the best epoch's weights back (fresh optimizer statistics: the old ones carried the
        run off its minimum); returns that epoch, or None if there is none."""
        with self.lock, self._cond:
            if self._peak is None:
                return None
            self._load(self._peak[2])
            self._new_optimizers()
            self.collapse, self._low_epochs = None, 0
            self.version += 1  # a worker's copy of this job is out of date
            self.message = f"The weights from epoch {self._peak[1]} are back."
            epoch = self._peak[1]
        # Measured and pictured now: the counters and the maps showed the collapsed network until
        # one more epoch was trained, so the button seemed to do nothing.
        self._record_epoch()
        self.take_snapshot()
        return epoch
