#!/usr/bin/env python3
"""sklearn's LogisticRegression(solver="lbfgs", penalty="l2", fit_intercept=True) fitted to its optimum in float64
numpy by Newton's method (sklearn needs scipy, which the tests do not require), and TITAN's choice of C: the fit of
lowest validation log loss, the first on ties. sklearn's objective, (1/n) sum -log p(y|x) + ||W||^2 / (2 C n), the
intercept unpenalised; softmax over the classes for more than two, one logistic weight vector (class 1 against 0) for
two. The multinomial Hessian is singular along a shift of every intercept (the probabilities do not change), so each
Newton step is the least-squares solution.

  logistic_reference.py DATA_FILE   # DATA_FILE: safetensors of train_x, train_y, val_x, val_y, test_x, costs,
                                    # classes [1]; prints {"val_log_loss": [...], "best": i,
                                    # "test_probabilities": [...]}
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "vit"))
from timm_vit_reference import read_safetensors  # noqa: E402


def softmax(z):
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def probabilities(theta, x, classes):
    z = np.hstack([x, np.ones((len(x), 1))]) @ theta.T
    return softmax(np.hstack([np.zeros_like(z), z]) if classes == 2 else z)


def fit(x, y, classes, C):
    n, d = x.shape
    xt = np.hstack([x, np.ones((n, 1))])
    rows = 1 if classes == 2 else classes
    theta = np.zeros((rows, d + 1))
    penalised = np.ones(d + 1)
    penalised[-1] = 0
    onehot = np.eye(classes)[y]

    def objective(t):
        p = probabilities(t, x, classes)
        return -np.log(p[np.arange(n), y]).mean() + (t[:, :d] ** 2).sum() / (2 * C * n)

    for _ in range(200):
        p = probabilities(theta, x, classes)
        if classes == 2:
            residual = (p[:, 1] - y)[:, None]
            weights = [[p[:, 1] * p[:, 0]]]
        else:
            residual = p - onehot
            weights = [[p[:, k] * ((k == m) - p[:, m]) for m in range(rows)] for k in range(rows)]
        gradient = (xt.T @ residual).T / n + theta * penalised / (C * n)
        if np.abs(gradient).max() < 1e-13:
            break
        size = d + 1
        hessian = np.zeros((rows * size, rows * size))
        for k in range(rows):
            for m in range(rows):
                block = (xt * weights[k][m][:, None]).T @ xt / n
                if k == m:
                    block += np.diag(penalised) / (C * n)
                hessian[k * size:(k + 1) * size, m * size:(m + 1) * size] = block
        step = np.linalg.lstsq(hessian, gradient.reshape(-1), rcond=None)[0].reshape(rows, size)
        # Backtracking keeps the far-from-optimum steps of a weakly regularised fit from overshooting.
        scale, current = 1.0, objective(theta)
        while objective(theta - scale * step) > current and scale > 1e-10:
            scale /= 2
        theta = theta - scale * step
    return theta


def main():
    data = read_safetensors(sys.argv[1])
    classes = int(data["classes"][0])
    train_y, val_y = data["train_y"].astype(np.int64), data["val_y"].astype(np.int64)
    losses, thetas = [], []
    for C in data["costs"]:
        theta = fit(data["train_x"], train_y, classes, float(C))
        p = probabilities(theta, data["val_x"], classes)
        losses.append(float(-np.log(p[np.arange(len(val_y)), val_y]).mean()))
        thetas.append(theta)
    best = int(np.argmin(losses))  # the first of the lowest
    print(json.dumps({"val_log_loss": losses, "best": best,
                      "test_probabilities": probabilities(thetas[best], data["test_x"], classes).tolist()}))


if __name__ == "__main__":
    main()
