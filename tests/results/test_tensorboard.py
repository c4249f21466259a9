"""Every training run writes TensorBoard events next to log.jsonl: loss, accuracy, lr, logit scale."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_event_file_holds_the_scalars(tiny_run):
    events = list((tiny_run / "tb").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file in RUN/tb"
    epochs = len((tiny_run / "log.jsonl").read_text().splitlines())
    acc = EventAccumulator(str(tiny_run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "train/top1", "test/top1", "train/lr", "train/logit_scale"):
        assert tag in tags, f"{tag} missing from {sorted(tags)}"
        assert [e.step for e in acc.Scalars(tag)] == list(range(1, epochs + 1))
