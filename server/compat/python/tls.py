"""annal-server over TLS with basic authentication, checked with the official Python client.

Run by ../run.sh, which starts a second server with a throwaway certificate and a users file
and sets ANNAL_TLS_SERVER (HOST:PORT), ANNAL_TLS_CA (the CA's PEM file), ANNAL_TLS_USER and
ANNAL_TLS_PASSWORD. Closes with "N passed, N failed"; exits non-zero if any check failed.
"""

import os
import sys
import uuid

from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import UnauthenticatedError

import checks

ENDPOINT = os.environ["ANNAL_TLS_SERVER"]
CA = os.environ["ANNAL_TLS_CA"]
USER = os.environ["ANNAL_TLS_USER"]
PASSWORD = os.environ["ANNAL_TLS_PASSWORD"]


def uri(user, password):
    return f"kurrentdb://{user}:{password}@{ENDPOINT}?tls=true&tlsCAFile={CA}"


def check_tls_with_credentials_appends_and_reads_back():
    client = KurrentDBClient(uri=uri(USER, PASSWORD))
    try:
        stream = f"tls-{uuid.uuid4()}"
        client.append_to_stream(
            stream, current_version=StreamState.NO_STREAM, events=NewEvent(type="Secure", data=b"{}")
        )
        assert [e.type for e in client.get_stream(stream)] == ["Secure"]
    finally:
        client.close()


def check_wrong_password_is_unauthenticated():
    try:
        client = KurrentDBClient(uri=uri(USER, PASSWORD + "-wrong"))
        try:
            client.append_to_stream(
                f"tls-{uuid.uuid4()}",
                current_version=StreamState.ANY,
                events=NewEvent(type="Refused", data=b"{}"),
            )
        finally:
            client.close()
    except UnauthenticatedError:
        return
    raise AssertionError("a wrong password did not raise UnauthenticatedError")


def main():
    return checks.run(globals())


if __name__ == "__main__":
    sys.exit(main())
