"""PyTorch Lightning's console: its tqdm progress bars, one epoch per finished bar.

    Epoch 4: 100%|██████████| 16/16 [00:33<00:00,  0.47it/s, v_num=0, train_loss=7e+3, val_loss=8.51e+3]

Lightning redraws the bar (with carriage returns, or newlines once the log went to a
file) and refreshes it once more when the epoch ends, so an epoch's values are those of
its last finished bar (`16/16`), its time the bar's elapsed `[00:33<...` (the bar is
reset each epoch and keeps running through validation). Epochs count from 0 and are
stored from 1. The bar shows every metric logged with `prog_bar=True` at its latest
value: a `val_*` value is kept only for an epoch during which a validation bar ran,
since on the others it repeats an earlier epoch's (a validation bar drawn at all
counts: Lightning clears it when done, often before it fills). `v_num` and per-step
values (`*_step`) are not epoch values and are left out; `train_loss` / `train_acc` (and their
`_epoch` forms) are loss and accuracy. Values are as the bar prints them: three
significant digits.
"""

from __future__ import annotations

import re

from training.imports.parsers import ANSI_CODES, LIGHTNING_CONSOLE, ParsedLog, to_number

_BAR = re.compile(
    r"(?P<label>Epoch (?P<epoch>\d+)|Validati(?:on|ng)(?: DataLoader \d+)?|"
    r"Sanity Checking(?: DataLoader \d+)?)"
    r":\s+(?:\d+%)?\|[^|\n\r]*\|\s*(?P<done>\d+|\?)/(?P<total>\d+|\?)\s*"
    r"\[(?P<elapsed>[\d:]+)(?:<[^,\]]*)?(?P<post>[^\]\n\r]*)\]")
_NAMED_LOSS = re.compile(r"[ ,]train_loss(?:_epoch)?=")
_FIELD = re.compile(r"([A-Za-z_][\w/.-]*)=([^,\s]+)")
_RUNNING_LOSS = "loss"  # Lightning 1.x's bar: the running mean of the last steps' losses
_NAMES = {"train_loss": "loss", "train_loss_epoch": "loss", "loss_epoch": "loss", "loss": "loss",
          "train_acc": "accuracy", "train_accuracy": "accuracy", "train_acc_epoch": "accuracy",
          "acc": "accuracy", "accuracy": "accuracy", "val_loss": "val_loss", "val_loss_epoch": "val_loss",
          "val_acc": "val_accuracy", "val_accuracy": "val_accuracy", "val_acc_epoch": "val_accuracy"}


def looks_like_lightning(text: str) -> bool:
    return bool(re.search(r"Epoch \d+:\s+\d+%\|", text))


def _seconds(clock: str) -> float:
    """tqdm's elapsed: SS, MM:SS or H:MM:SS."""
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part or 0)
    return seconds


def _values(post: str) -> dict:
    """The bar's postfix as fields; a bare `loss` (Lightning 1.x) is kept under the key "loss"
    only when no `train_loss` gives the epoch's own."""
    values, fields = {}, dict(_FIELD.findall(post))
    for name, text in fields.items():
        if name == "v_num" or name.endswith("_step") or (number := to_number(text)) is None:
            continue
        if name == _RUNNING_LOSS and any(_NAMES.get(other) == "loss" for other in fields if other != name):
            continue
        values[_NAMES.get(name, name)] = number
    return values


def parse_lightning(text: str) -> list[ParsedLog]:
    """One log per training (a bar back at epoch 0 starts another), not yet finished."""
    logs: list[ParsedLog] = []
    finals: dict[int, tuple[float, dict, int]] = {}  # epoch -> (seconds, values, line) of its last full bar
    validated: set[int] = set()
    epoch: int | None = None
    clean = ANSI_CODES.sub("", text)

    def close() -> None:
        named_loss = _NAMED_LOSS.search(clean) is not None
        if finals:
            log = ParsedLog(name=None, format=LIGHTNING_CONSOLE, engine="loop",
                            first_line=min(line for _, _, line in finals.values()))
            stale = []
            for number in sorted(finals):
                seconds, values, line = finals[number]
                if number not in validated and any(key.startswith("val_") for key in values):
                    stale.append(number + 1)
                    values = {k: v for k, v in values.items() if not k.startswith("val_")}
                log.epochs.append({"epoch": number + 1, "epoch_time_s": seconds, **values, "_line": line})
            if any(_RUNNING_LOSS in values for _, values, _ in finals.values()) and not named_loss:
                log.notes.append("`loss` on these bars is Lightning 1.x's running mean of the last steps' "
                                 "training losses at the epoch's end, not the epoch's mean")
            if stale:
                count = f"{len(stale)} epochs" if len(stale) > 1 else "1 epoch"
                log.notes.append(f"{count} ran no validation (e.g. epoch {stale[0]}): their bars repeat an "
                                 "earlier epoch's val_* values, which are not kept for them")
            logs.append(log)
        finals.clear()
        validated.clear()

    line, counted = 1, 0
    for match in _BAR.finditer(clean):
        line, counted = line + clean.count("\n", counted, match.start()), match.start()
        if match["epoch"] is not None:
            number = int(match["epoch"])
            if epoch is not None and number < epoch:
                close()  # a second fit
            epoch = number
            if match["done"] == match["total"] and match["total"] != "?":
                finals[number] = (_seconds(match["elapsed"]), _values(match["post"]), line)
        elif match["label"].startswith("Validati") and epoch is not None:
            validated.add(epoch)  # a validation bar drawn at all: it may be cleared before it fills
    close()
    return logs
