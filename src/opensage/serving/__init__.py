"""The model server that runs inside an endpoint variant instance or a batch transform.

The platform starts it as `python -m opensage.serving serve` (what `docker run <image> serve`
runs) and speaks SageMaker's inference container contract to it: `GET /ping`,
`POST /invocations`, `GET /execution-parameters`. Like `opensage.algorithms`, it is a program
on the container side of the process boundary: it reads the model directory and environment
variables through `opensage.contract` and never imports the platform.

Modules, from the outside in:

* `server`: the command line, which handler to load, and the uvicorn process lifecycle.
* `app`: the ASGI callable (routing, body limits, the prediction thread pool).
* `workers`: the worker processes behind the front end when there are several.
* `handler`, `errors`: the small protocol every handler implements, and its error type.
* `environment`: the environment variables the server and the handlers read.
* `toolkit`, `context`, `codecs`: the SageMaker Inference Toolkit semantics for user scripts.
* Built-in algorithms plug in as `opensage.algorithms.<name>.serve.load(model_dir)`.
"""
