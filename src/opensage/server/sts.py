"""The STS subset the SageMaker SDK needs: GetCallerIdentity, over the AWS query protocol.

`sagemaker.Session` asks STS for the account id (its default bucket is named after it), through
a client the user never configures: with `AWS_ENDPOINT_URL` set, that client lands here. The
caller is the account opensage runs as, and the access key the request was signed with.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from opensage.server.signing import access_key_of

_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"


class StsApi:
    signing_name = "sts"

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        form.update(parse_qs(request.url.query))
        action = (form.get("Action") or [""])[0]
        if action != "GetCallerIdentity":
            return _error(
                "InvalidAction",
                f"opensage's STS answers GetCallerIdentity only, not '{action}'",
                request_id,
            )
        user = access_key_of(request) or "opensage"
        return _xml(
            f'<GetCallerIdentityResponse xmlns="{_XMLNS}"><GetCallerIdentityResult>'
            f"<Arn>arn:aws:iam::{self.account_id}:user/{escape(user)}</Arn>"
            f"<UserId>{escape(user)}</UserId><Account>{self.account_id}</Account>"
            "</GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>",
            200,
        )


def _xml(body: str, status: int) -> Response:
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?>\n{body}',
        status_code=status,
        media_type="text/xml",
    )


def _error(code: str, message: str, request_id: str) -> Response:
    return _xml(
        f'<ErrorResponse xmlns="{_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>",
        400,
    )
