"""Sends one message with Python's smtplib, as a Python application would; prints one JSON line.

Arguments come from the environment: SMTP_PORT, SMTP_MODE (starttls or tls), SMTP_CAFILE,
SMTP_USER, SMTP_PASSWORD, SMTP_FROM, SMTP_TO (comma-separated), SMTP_MESSAGE (a file).
"""
import json
import os
import smtplib
import ssl

env = os.environ
context = ssl.create_default_context(cafile=env["SMTP_CAFILE"])
result = {}
try:
    if env["SMTP_MODE"] == "tls":
        client = smtplib.SMTP_SSL("localhost", int(env["SMTP_PORT"]), local_hostname="python-app.local", context=context, timeout=20)
    else:
        client = smtplib.SMTP("localhost", int(env["SMTP_PORT"]), local_hostname="python-app.local", timeout=20)
        client.starttls(context=context)
    with client:
        client.ehlo("python-app.local")
        result["features"] = sorted(client.esmtp_features.keys())
        client.login(env["SMTP_USER"], env["SMTP_PASSWORD"])
        with open(env["SMTP_MESSAGE"], "rb") as f:
            message = f.read()
        code, reply = client.mail(env["SMTP_FROM"], ["SMTPUTF8"] if b"\xc3" in message else [])
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, env["SMTP_FROM"])
        for rcpt in env["SMTP_TO"].split(","):
            code, reply = client.rcpt(rcpt)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
        code, reply = client.data(message)
        result.update(code=code, reply=reply.decode("utf-8", "replace"))
except smtplib.SMTPAuthenticationError as e:
    result.update(code=e.smtp_code, reply=e.smtp_error.decode("utf-8", "replace"), error="auth")
except smtplib.SMTPResponseException as e:
    result.update(code=e.smtp_code, reply=e.smtp_error.decode("utf-8", "replace"), error=type(e).__name__)
print(json.dumps(result))
