"""MetricsLogger: a CSV with exactly the logged columns (no empty `val_*` twins), columns
added when a key first appears, and resumed files without repeated epochs."""

import csv
from types import SimpleNamespace

import keras

import keras_trust as kt


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _log(logger, epochs, model=None):
    logger.set_model(model or SimpleNamespace(epochs_trained=0))
    logger.on_train_begin()
    for epoch, logs in epochs:
        logger.on_epoch_end(epoch, dict(logs))
    logger.on_train_end()


def test_keras_csvlogger_adds_empty_val_columns_and_this_does_not(tmp_path):
    epochs = [(0, {"kl": 0.5, "episode_return": 10.0}), (1, {"kl": 0.25, "episode_return": 12.0})]
    # What Keras does with logs that have no val_ entry (the cause of the empty columns).
    stock = keras.callbacks.CSVLogger(str(tmp_path / "keras.csv"))
    stock.set_model(keras.Sequential())
    stock.on_train_begin()
    for epoch, logs in epochs:
        stock.on_epoch_end(epoch, dict(logs))
    stock.on_train_end()
    fields, rows = _rows(tmp_path / "keras.csv")
    assert "val_kl" in fields and rows[0]["val_kl"] == "NA"

    _log(kt.callbacks.MetricsLogger(tmp_path / "m.csv"), epochs)
    fields, rows = _rows(tmp_path / "m.csv")
    assert fields == ["epoch", "episode_return", "kl"]
    assert [(r["epoch"], float(r["kl"])) for r in rows] == [("0", 0.5), ("1", 0.25)]


def test_a_key_that_appears_later_adds_a_column(tmp_path):
    path = tmp_path / "m.csv"
    _log(
        kt.callbacks.MetricsLogger(path),
        [
            (0, {"kl": 0.1}),
            (1, {"kl": 0.2, "eval_return": 500.0}),
            (2, {"kl": 0.3}),
        ],
    )
    fields, rows = _rows(path)
    assert fields == ["epoch", "kl", "eval_return"]
    assert [r["eval_return"] for r in rows] == ["", "500.0", ""]
    assert [r["kl"] for r in rows] == ["0.1", "0.2", "0.3"]
    assert not [p for p in tmp_path.iterdir() if p.name != "m.csv"]  # no temporary files


def test_floats_keep_all_their_digits(tmp_path):
    value = 0.1 + 0.2  # 0.30000000000000004
    _log(kt.callbacks.MetricsLogger(tmp_path / "m.csv"), [(0, {"x": value})])
    assert float(_rows(tmp_path / "m.csv")[1][0]["x"]) == value


def test_append_drops_epochs_past_the_checkpoint(tmp_path):
    path = tmp_path / "m.csv"
    # A run wrote epochs 0-4, but its last checkpoint was after epoch 2 (3 epochs).
    _log(kt.callbacks.MetricsLogger(path), [(e, {"kl": float(e)}) for e in range(5)])
    resumed = kt.callbacks.MetricsLogger(path, append=True)
    _log(
        resumed,
        [(3, {"kl": 30.0}), (4, {"kl": 40.0, "eval_return": 9.0})],
        SimpleNamespace(epochs_trained=3),
    )
    fields, rows = _rows(path)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [float(r["kl"]) for r in rows] == [0.0, 1.0, 2.0, 30.0, 40.0]
    assert fields == ["epoch", "kl", "eval_return"] and rows[4]["eval_return"] == "9.0"


def test_without_append_an_old_file_is_replaced(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("epoch,old\n0,1\n")
    _log(kt.callbacks.MetricsLogger(path), [(0, {"kl": 1.0})])
    assert _rows(path)[0] == ["epoch", "kl"]
