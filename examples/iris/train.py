"""Train a classifier on the iris dataset bundled with scikit-learn (nothing is downloaded).

Hyperparameters live in params.json beside this file. Everything is seeded, so the same code and
params give byte-identical outputs; only train.log carries timestamps and durations.

Outputs (in outputs/):
  metrics.json           accuracy, macro F1 and log loss on the train and test splits
  predictions.csv        one row per test sample: id, true and predicted class, class probabilities
  confusion_matrix.png   test-set confusion matrix
  train.log              the log printed while training
  model.pkl              the fitted model with its feature and class names (read by serve.py)
"""

import csv
import json
import logging
import pickle
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = Path(__file__).resolve().parent
PARAMS_FILE = HERE / "params.json"
OUTPUTS = Path("outputs")

# Column names without spaces or units, so that serve.py requests are easy to write.
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

log = logging.getLogger("train")


def setup_logging() -> None:
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(OUTPUTS / "train.log", mode="w")):
        handler.setFormatter(formatter)
        log.addHandler(handler)


def build_model(params: dict):
    kind = params.get("model", "random_forest")
    seed = params["seed"]
    if kind == "random_forest":
        return RandomForestClassifier(
            n_estimators=params["n_estimators"], max_depth=params["max_depth"], random_state=seed, n_jobs=1
        )
    if kind == "gradient_boosting":
        return GradientBoostingClassifier(
            n_estimators=params["n_estimators"],
            max_depth=params["max_depth"],
            learning_rate=params.get("learning_rate", 0.1),
            random_state=seed,
        )
    raise SystemExit(f"params.json: unknown model {kind!r} (random_forest or gradient_boosting)")


def split_metrics(model, x, y, n_classes: int) -> dict:
    proba = model.predict_proba(x)
    pred = proba.argmax(axis=1)
    return {
        "accuracy": round(float(accuracy_score(y, pred)), 6),
        "f1_macro": round(float(f1_score(y, pred, average="macro")), 6),
        "log_loss": round(float(log_loss(y, proba, labels=list(range(n_classes)))), 6),
    }


def write_predictions(path: Path, ids, y_true, proba, class_names) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "true_label", "predicted_label", *[f"p_{name}" for name in class_names]])
        order = np.argsort(ids, kind="stable")
        for i in order:
            row_proba = proba[i]
            writer.writerow(
                [
                    int(ids[i]),
                    class_names[y_true[i]],
                    class_names[int(row_proba.argmax())],
                    *[f"{p:.6f}" for p in row_proba],
                ]
            )


def plot_confusion(path: Path, matrix: np.ndarray, class_names, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(len(class_names)), labels=class_names)
    ax.set_yticks(range(len(class_names)), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > threshold else "black",
            )
    fig.tight_layout()
    # No "Software" chunk (it carries the matplotlib version): same figure, same bytes.
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    started = time.perf_counter()
    setup_logging()
    params = json.loads(PARAMS_FILE.read_text())
    log.info("params: %s", json.dumps(params, sort_keys=True))
    log.info(
        "python %s, scikit-learn %s, numpy %s", platform.python_version(), sklearn.__version__, np.__version__
    )

    data = load_iris()
    x, y, class_names = data.data, data.target, [str(name) for name in data.target_names]
    ids = np.arange(len(y))
    x_train, x_test, y_train, y_test, _, ids_test = train_test_split(
        x, y, ids, test_size=params.get("test_size", 0.3), random_state=params["seed"], stratify=y
    )
    log.info(
        "dataset: iris, %d samples, %d features, %d classes; train %d, test %d",
        len(y),
        x.shape[1],
        len(class_names),
        len(y_train),
        len(y_test),
    )

    model = build_model(params)
    fit_started = time.perf_counter()
    model.fit(x_train, y_train)
    log.info("fitted %s in %.3fs", type(model).__name__, time.perf_counter() - fit_started)

    metrics = {
        "train": split_metrics(model, x_train, y_train, len(class_names)),
        "test": split_metrics(model, x_test, y_test, len(class_names)),
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
    }
    for split in ("train", "test"):
        m = metrics[split]
        log.info(
            "%s: accuracy %.4f, f1_macro %.4f, log_loss %.4f",
            split,
            m["accuracy"],
            m["f1_macro"],
            m["log_loss"],
        )
    (OUTPUTS / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")

    proba_test = model.predict_proba(x_test)
    write_predictions(OUTPUTS / "predictions.csv", ids_test, y_test, proba_test, class_names)
    matrix = confusion_matrix(y_test, proba_test.argmax(axis=1), labels=list(range(len(class_names))))
    plot_confusion(
        OUTPUTS / "confusion_matrix.png",
        matrix,
        class_names,
        f"iris test set, accuracy {metrics['test']['accuracy']:.3f}",
    )

    bundle = {"model": model, "features": FEATURES, "classes": class_names, "params": params}
    with (OUTPUTS / "model.pkl").open("wb") as handle:
        pickle.dump(bundle, handle, protocol=4)

    log.info("wrote metrics.json, predictions.csv, confusion_matrix.png, model.pkl to %s/", OUTPUTS)
    log.info("done in %.3fs", time.perf_counter() - started)


if __name__ == "__main__":
    main()
