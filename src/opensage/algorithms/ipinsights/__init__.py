"""The IP Insights built-in (SageMaker repository `ipinsights`): how compatible an entity (a user,
an account) is with an IPv4 address, learned from `entity_id, ipv4` login rows.

Implemented (spec algorithms §9): the hyperparameters with their ranges and the rule
1 <= random_negative_sampling_rate + shuffled_negative_sampling_rate <= 500; CSV training
(`train`, optional `validation`) in File mode; entities hashed (blake2b) into
`num_entity_vectors` rows; addresses encoded as the sum of their /8, /16, /24 and /32 prefix
embeddings followed by `num_ip_encoder_layers` residual tanh layers (`model.py`); the score
`<entity, ip>` trained with binary cross-entropy against random and in-batch shuffled negative
addresses, by Adam with lazy row updates of the tables (`optim.py`, `fit.py`), reproducibly
(fixed seeds); `validation:discriminator_auc` per epoch; serving CSV, JSON and JSON Lines
requests with `dot_product` answers in JSON or JSON Lines, `entity_embedding` and
`ip_embedding` with `verbose=true`.

Refused with a clear reason: Pipe mode and non-CSV (RecordIO) channels (at job start, as the
spec allows File-mode CSV only), RecordIO requests (415), malformed rows or addresses (the job
fails naming the file and line; a request gets a 400 naming the row), training on more than
one instance ("Distributed IP Insights training over N instances is not supported yet").

Not implemented: IPv6 (SageMaker reads IPv4 only too), and SageMaker's own model file (ours is
the numpy archive of `artifacts.py`; SageMaker's IP Insights artifact is undocumented).
"""
