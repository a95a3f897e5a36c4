"""A real SMTP server (aiosmtpd) for authd's email tests.

Usage: smtp_sink.py PORT OUT_DIR [--reject-rcpt] [--delay-ms N]

Every message received is parsed with Python's email package and written to OUT_DIR as
JSON: recipients, subject, content types, and the text/plain and text/html parts. With
--reject-rcpt every recipient is refused with 550; with --delay-ms each message takes N ms
to accept (a slow relay), connections in parallel. Each RCPT attempt is appended to
OUT_DIR/attempts. The server exits when its parent (the test process) goes away.
"""

import asyncio
import email
import email.policy
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir, reject, delay):
        self.out_dir = out_dir
        self.reject = reject
        self.delay = delay
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(os.path.join(self.out_dir, "attempts"), "a") as f:
            f.write(address + "\n")
        if self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if not part.is_multipart():
                parts[part.get_content_type()] = part.get_content()
        record = {
            "from": message["From"],
            "to": envelope.rcpt_tos,
            "subject": message["Subject"],
            "content_type": message.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        self.count += 1
        path = os.path.join(self.out_dir, f"message-{time.time_ns()}-{self.count}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def main():
    port, out_dir = int(sys.argv[1]), sys.argv[2]
    reject = "--reject-rcpt" in sys.argv[3:]
    delay = 0.0
    if "--delay-ms" in sys.argv[3:]:
        delay = int(sys.argv[sys.argv.index("--delay-ms") + 1]) / 1000
    parent = os.getppid()
    controller = Controller(Sink(out_dir, reject, delay), hostname="127.0.0.1", port=port)
    controller.start()
    with open(os.path.join(out_dir, "ready"), "w") as f:
        f.write("ready\n")
    try:
        while os.getppid() == parent:
            time.sleep(0.5)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
