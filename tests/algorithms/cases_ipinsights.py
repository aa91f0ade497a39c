"""IP Insights' conformance cases, and the generated login data its tests share.

The suite trains on numbers; IP Insights reads text columns, so its cases give `text_rows`
(training and request rows as `entity_id, ipv4` strings) and train on CSV only (RecordIO is
refused, which the suite checks).

Logins: `users` users, each with three home /24 subnets, logging in from random hosts of their
own subnets (a per-user habit the model can learn; validation logins come from the same habits
with another seed).
"""

from __future__ import annotations

import numpy as np

from tests.algorithms.conformance import CSV, Array, Case

Pair = tuple[str, str]


def login_rows(users: int = 200, per_user: int = 40, seed: int = 1, habits: int = 0) -> list[Pair]:
    """`(user_<i>, a.b.c.d)` rows; `habits` seeds the users' home subnets (shared by the training
    and validation rows of one data set), `seed` the logins drawn from them."""
    homes = np.random.default_rng(habits).integers(0, 1 << 24, size=(users, 3), dtype=np.int64)
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(users), per_user)
    subnet = homes[user, rng.integers(0, 3, len(user))]
    ips = (subnet << 8) | rng.integers(0, 256, len(user))
    return [(f"user_{u}", _dotted(int(ip))) for u, ip in zip(user, ips, strict=True)]


def _dotted(value: int) -> str:
    return ".".join(str(value >> shift & 255) for shift in (24, 16, 8, 0))


def csv_body(rows: list[Pair]) -> bytes:
    return "".join(f"{entity}, {ip}\n" for entity, ip in rows).encode()


REQUEST_ROWS = [
    ("user_1", "10.0.0.1"),
    ("user_2", "192.168.7.9"),
    ("a new user", "8.8.8.8"),
    ("user_3", "255.255.255.255"),
]


def _logins() -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    return list(login_rows(users=30, per_user=10)), list(REQUEST_ROWS)


def _numbers() -> tuple[Array, None]:
    raise AssertionError("IP Insights reads text rows: the suite uses `text_rows`")


def _case(name: str, channels: tuple[str, ...], **hyperparameters: str) -> Case:
    return Case(
        name=f"ipinsights-{name}",
        algorithm="ipinsights",
        hyperparameters={
            "num_entity_vectors": "64",
            "vector_dim": "8",
            "epochs": "2",
            "mini_batch_size": "64",
            **hyperparameters,
        },
        data=_numbers,
        text_rows=_logins,
        response_keys=("dot_product",),
        verbose_keys=("entity_embedding", "ip_embedding"),
        channels=channels,
        metrics=("validation:discriminator_auc",) if "validation" in channels else (),
        training_content_types=(CSV,),
    )


CASES = [
    _case("validation", ("train", "validation")),
    _case(
        "deep-random-negatives-only",
        ("train",),
        num_ip_encoder_layers="3",
        random_negative_sampling_rate="2",
        shuffled_negative_sampling_rate="0",
        learning_rate="0.01",
    ),
]
