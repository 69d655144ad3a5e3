"""A real SMTP server for gitpat's mail tests (aiosmtpd), on 127.0.0.1.

Every message it accepts is written to DIR as NNNNN.json: the envelope
sender and recipients, whether the session was under TLS, and the raw
message. With --cert/--key it offers STARTTLS and requires it before mail.
With --implicit-tls it speaks TLS from the first byte instead. With
--user/--password it requires AUTH (over TLS) with those credentials.
It prints "ready" once it listens, and runs until killed.
"""

import argparse
import itertools
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder, implicit_tls):
        self.folder = folder
        self.implicit_tls = implicit_tls
        self.count = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        n = next(self.count)
        path = os.path.join(self.folder, f"{n:05}.json")
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            # aiosmtpd sets session.ssl for STARTTLS only.
            "tls": session.ssl is not None or self.implicit_tls,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    kwargs = {}
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.implicit_tls:
            kwargs = {"ssl_context": ctx}
        else:
            kwargs = {"tls_context": ctx, "require_starttls": True}
    if a.user:

        def check(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode() == a.user and auth_data.password.decode() == a.password
            )
            return AuthResult(success=ok)

        # aiosmtpd counts only STARTTLS as TLS for AUTH: with implicit TLS
        # the session is encrypted from the first byte anyway.
        kwargs.update({"authenticator": check, "auth_required": True, "auth_require_tls": not a.implicit_tls})
    c = Controller(Sink(a.dir, a.implicit_tls and bool(a.cert)), hostname="127.0.0.1", port=a.port, ready_timeout=30, **kwargs)
    c.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
