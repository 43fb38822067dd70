"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1:PORT that stores each message it accepts
as one JSON file in DIR ({"to", "from", "subject", "text", "html", "message_id"}), written to a
temporary name and renamed, so a reader never sees half a file. Prints `ready` once it listens.
--refuse: answers every recipient with a temporary failure (451) and stores nothing.
--tls starttls|smtps with --cert and --key: requires STARTTLS, or speaks TLS from the first byte."""

import argparse
import email
import email.policy
import json
import os
import signal
import ssl
import time
import uuid

from aiosmtpd.controller import Controller


class Store:
    def __init__(self, directory, refuse):
        self.directory = directory
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        record = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "header_from": str(msg["From"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "text": text.get_content() if text is not None else "",
            "html": html.get_content() if html is not None else "",
        }
        name = f"{time.time_ns()}-{uuid.uuid4().hex}.json"
        tmp = os.path.join(self.directory, "." + name)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--refuse", action="store_true")
    parser.add_argument("--tls", choices=["starttls", "smtps"])
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    tls = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            tls = {"tls_context": context, "require_starttls": True}
        else:
            tls = {"ssl_context": context}
    # SIGTERM and SIGINT are blocked before the server's thread starts (it inherits the mask) and
    # taken with sigwait here: a handler could run on that thread and never wake the main one.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    controller = Controller(Store(args.dir, args.refuse), hostname="127.0.0.1", port=args.port, **tls)
    controller.start()
    print("ready", flush=True)
    signal.sigwait(stop_signals)
    controller.stop()


if __name__ == "__main__":
    main()
