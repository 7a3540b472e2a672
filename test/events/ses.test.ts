import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEntries, expectError } from "../api/fixtures.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { type SesPeer, startSesPeer } from "../peers/ses-peer.js";
import {
  messageView,
  type SnsPeer,
  type SnsSigningKey,
  sendAndSettle,
  signSns,
  snsNotification,
  snsSigningKey,
  startSnsPeer,
  suppressionsOf,
} from "./support.js";

const TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events";

/** SES's documented notification contents (SES Developer Guide, "notification examples"). */
const sesBounce = (messageId: string, recipients: string[], bounceType = "Permanent") => ({
  notificationType: "Bounce",
  bounce: {
    bounceType,
    bounceSubType: bounceType === "Permanent" ? "General" : "MailboxFull",
    bouncedRecipients: recipients.map((emailAddress) => ({
      emailAddress,
      action: "failed",
      status: "5.1.1",
      diagnosticCode: `smtp; 550 5.1.1 <${emailAddress}>... User unknown`,
    })),
    timestamp: new Date().toISOString(),
    feedbackId: "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
    reportingMTA: "dns; email.example.com",
    remoteMtaIp: "127.0.2.0",
  },
  mail: {
    timestamp: new Date().toISOString(),
    source: "sender@example.com",
    sourceArn: "arn:aws:ses:us-east-1:123456789012:identity/example.com",
    sourceIp: "127.0.3.0",
    sendingAccountId: "123456789012",
    messageId,
    destination: recipients,
    headersTruncated: false,
    headers: [{ name: "Subject", value: "Provider events" }],
    commonHeaders: { from: ["sender@example.com"], to: recipients, subject: "Provider events" },
  },
});

const sesComplaint = (messageId: string, recipient: string) => ({
  notificationType: "Complaint",
  complaint: {
    userAgent: "AnyCompany Feedback Loop (V0.01)",
    complainedRecipients: [{ emailAddress: recipient }],
    complaintFeedbackType: "abuse",
    arrivalDate: new Date().toISOString(),
    timestamp: new Date().toISOString(),
    feedbackId: "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
  },
  mail: { timestamp: new Date().toISOString(), source: "sender@example.com", messageId, destination: [recipient] },
});

const sesDelivery = (messageId: string, recipient: string) => ({
  notificationType: "Delivery",
  mail: { timestamp: new Date().toISOString(), source: "sender@example.com", messageId, destination: [recipient] },
  delivery: {
    timestamp: new Date().toISOString(),
    processingTimeMillis: 546,
    recipients: [recipient],
    smtpResponse: "250 ok:  Message 64111812 accepted",
    reportingMTA: "a8-70.smtp-out.amazonses.com",
    remoteMtaIp: "127.0.2.0",
  },
});

describe.each(await availableDialects())("SES events through SNS on %s", (dialect) => {
  let t: TestApp;
  let ses: SesPeer;
  let sns: SnsPeer;
  /** A peer the operator did not allow: it must never be asked for anything. */
  let stranger: SnsPeer;
  let key: SnsSigningKey;
  let serverId: string;
  let authorization: string;
  let n = 0;
  const rcpt = () => `ses-${dialect}-${++n}@example.org`;

  beforeAll(async () => {
    key = await snsSigningKey();
    ses = await startSesPeer();
    sns = await startSnsPeer(key.certificate);
    stranger = await startSnsPeer(key.certificate);
    t = await startTestApp(dialect, {
      // The operator lets loopback stand in for sns.<region>.amazonaws.com: only this one peer.
      MAILROOM_ALLOWED_ENDPOINTS: [ses.endpoint, sns.url].join(","),
      MAILROOM_POLL_MS: "20",
    });
    const server = await t.mailroom.servers.create(
      {
        name: "SES",
        driver: "ses",
        fromAddress: "sender@example.com",
        settings: {
          region: "us-east-1",
          accessKeyId: "AKIAIOSFODNN7EXAMPLE",
          secretAccessKey: "ses-secret-key",
          endpoint: ses.endpoint,
        },
      },
      { type: "system", id: null, label: "test" },
    );
    serverId = server.id;
    const res = await t.request(t.admin, { method: "PUT", url: `/api/email-servers/${serverId}/event-sources/ses`, payload: {} });
    expect(res.statusCode, res.body).toBe(200);
    const { username, password } = res.json().credentials;
    authorization = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t.close();
    await ses.close();
    await sns.close();
    await stranger.close();
  });

  /** Posts as SNS does: JSON as text/plain, with the basic auth of the URL. */
  const post = (message: unknown, auth: string | null = authorization) =>
    t.request(null, {
      method: "POST",
      url: `/api/provider-events/${serverId}/ses`,
      payload: JSON.stringify(message),
      headers: {
        "content-type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": String((message as { Type?: string }).Type),
        ...(auth ? { authorization: auth } : {}),
      },
    });
  const send = (to: string | string[]) => sendAndSettle(t, t.admin, "SES", to);

  it("confirms a subscription by fetching its SubscribeURL from the allowed peer, and records the topic", async () => {
    sns.requests.length = 0;
    const confirmation = signSns(
      {
        Type: "SubscriptionConfirmation",
        MessageId: "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        Token:
          "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        TopicArn: TOPIC,
        Message: `You have chosen to subscribe to the topic ${TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
        SubscribeURL: `${sns.url}/confirm?Action=ConfirmSubscription&TopicArn=${TOPIC}&Token=2336412f37`,
        Timestamp: new Date().toISOString(),
      },
      key,
      sns.certUrl,
    );
    // SNS first posts without credentials and expects to be asked for them.
    const challenge = await post(confirmation, null);
    expectError(challenge, 401, "provider_event_unauthorized");
    expect(challenge.headers["www-authenticate"]).toMatch(/^Basic /);

    const res = await post(confirmation);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ subscription: "confirmed" });
    expect(sns.requests).toEqual([
      "/SimpleNotificationService-test.pem",
      expect.stringMatching(/^\/confirm\?Action=ConfirmSubscription/),
    ]);
    const source = (await t.request(t.admin, { method: "GET", url: `/api/email-servers/${serverId}/event-sources` })).json();
    expect(source.items.find((s: { provider: string }) => s.provider === "ses")).toMatchObject({ setUp: true, topicArn: TOPIC });
    expect((await auditEntries(t, "&action=provider_events.ses.subscribed"))[0]).toMatchObject({ after: { topicArn: TOPIC } });
  });

  it("a Bounce for two recipients, a Complaint and a Delivery (SignatureVersion 1 and 2) update messages and the suppression list", async () => {
    const [a, b] = [rcpt(), rcpt()];
    const message = await send([a, b]);
    const id = message.provider_message_id as string;
    const delivered = await post(signSns(snsNotification(sesDelivery(id, a), TOPIC), key, sns.certUrl, "2"));
    expect(delivered.json()).toMatchObject({ accepted: 1 });
    expect((await messageView(t, message.id)).status).toBe("delivered");

    const bounced = await post(signSns(snsNotification(sesBounce(id, [a, b]), TOPIC), key, sns.certUrl, "1"));
    expect(bounced.json()).toMatchObject({ accepted: 2 });
    const view = await messageView(t, message.id);
    expect(view.status).toBe("bounced");
    expect(view.events.filter((e: { type: string }) => e.type === "bounced")).toEqual([
      expect.objectContaining({ recipient: a, bounceKind: "hard", diagnostic: expect.stringContaining("User unknown") }),
      expect.objectContaining({ recipient: b, bounceKind: "hard" }),
    ]);
    expect((await suppressionsOf(t, `&q=ses-${dialect}`)).map((s) => s.address).sort()).toEqual([a, b].sort());

    const c = rcpt();
    const second = await send(c);
    const complaint = await post(
      signSns(snsNotification(sesComplaint(second.provider_message_id as string, c), TOPIC), key, sns.certUrl, "2"),
    );
    expect(complaint.json()).toMatchObject({ accepted: 1 });
    expect((await messageView(t, second.id)).status).toBe("complained");
    expect(await suppressionsOf(t, `&q=${c}`)).toEqual([expect.objectContaining({ reason: "complaint" })]);

    // SNS delivering the same notification again adds nothing.
    const again = signSns(snsNotification(sesBounce(id, [a]), TOPIC), key, sns.certUrl);
    expect((await post(again)).json()).toMatchObject({ accepted: 1 });
    expect((await post(again)).json()).toMatchObject({ accepted: 0, duplicates: 1 });
  });

  it("a transient bounce is soft: no suppression", async () => {
    const to = rcpt();
    const message = await send(to);
    await post(
      signSns(snsNotification(sesBounce(message.provider_message_id as string, [to], "Transient"), TOPIC), key, sns.certUrl),
    );
    expect((await messageView(t, message.id)).events).toEqual([expect.objectContaining({ bounceKind: "soft" })]);
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([]);
  });

  it("refuses a certificate or SubscribeURL on another host without fetching it, and a forged signature; audited", async () => {
    const to = rcpt();
    const message = await send(to);
    const notification = snsNotification(sesBounce(message.provider_message_id as string, [to]), TOPIC);
    stranger.requests.length = 0;
    const before = (await auditEntries(t, "&action=provider_events.refused")).length;
    for (const certUrl of [
      stranger.certUrl,
      "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
      "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
      "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
      "https://user:pw@sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
      "not a url",
    ]) {
      expectError(await post(signSns(notification, key, certUrl)), 401, "sns_certificate_refused");
    }
    const subscribeElsewhere = signSns(
      {
        Type: "SubscriptionConfirmation",
        MessageId: "f1",
        Token: "t1",
        TopicArn: TOPIC,
        Message: "confirm",
        SubscribeURL: `${stranger.url}/confirm?Token=t1`,
        Timestamp: new Date().toISOString(),
      },
      key,
      sns.certUrl,
    );
    expectError(await post(subscribeElsewhere), 401, "sns_certificate_refused");
    expect(stranger.requests).toEqual([]);

    // Signed by another key, or altered after signing: the signature does not verify.
    const other = await snsSigningKey();
    expectError(await post(signSns(notification, other, sns.certUrl)), 401, "provider_event_unauthorized");
    const altered = signSns(notification, key, sns.certUrl);
    altered.Message = altered.Message.replace("Permanent", "Transient");
    expectError(await post(altered), 401, "provider_event_unauthorized");
    expectError(
      await post({ ...signSns(notification, key, sns.certUrl), SignatureVersion: "3" }),
      401,
      "provider_event_unauthorized",
    );
    // Wrong basic auth on a real SNS message: refused before anything is fetched.
    expectError(
      await post(signSns(notification, key, sns.certUrl), "Basic bWFpbHJvb206d3Jvbmc="),
      401,
      "provider_event_unauthorized",
    );

    expect((await messageView(t, message.id)).status).toBe("sent");
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([]);
    const refused = await auditEntries(t, "&action=provider_events.refused");
    expect(refused.length - before).toBe(1);
    expect(refused[0].after).toMatchObject({ provider: "ses" });
  });

  it("answers 502 when the allowed certificate cannot be had, 400 for a body that is not SNS's, and logs an unsubscription", async () => {
    const to = rcpt();
    const message = await send(to);
    const notification = snsNotification(sesBounce(message.provider_message_id as string, [to]), TOPIC);
    expectError(await post(signSns(notification, key, `${sns.url}/missing.pem`)), 502, "sns_certificate_unavailable");
    expectError(await post({ notificationType: "Bounce" }), 400, "provider_event_invalid");
    expectError(await post({ ...signSns(notification, key, sns.certUrl), Message: undefined }), 400, "provider_event_invalid");
    const notSes = signSns({ ...notification, Message: "plain text" }, key, sns.certUrl);
    expectError(await post(notSes), 400, "provider_event_invalid");

    const unsubscribe = signSns(
      {
        Type: "UnsubscribeConfirmation",
        MessageId: "47138184-6831-46b8-8f7c-afc488602d7d",
        Token: "2336412f37",
        TopicArn: TOPIC,
        Message: `You have chosen to deactivate subscription ${TOPIC}:1.`,
        SubscribeURL: `${sns.url}/confirm?Action=ConfirmSubscription&TopicArn=${TOPIC}&Token=2336412f37`,
        Timestamp: new Date().toISOString(),
      },
      key,
      sns.certUrl,
    );
    sns.requests.length = 0;
    expect((await post(unsubscribe)).json()).toMatchObject({ subscription: "unsubscribed" });
    // Nothing is fetched for it: the certificate is cached, and an unsubscription is only noted.
    expect(sns.requests).toEqual([]);
    const source = (await t.request(t.admin, { method: "GET", url: `/api/email-servers/${serverId}/event-sources` })).json();
    expect(source.items.find((s: { provider: string }) => s.provider === "ses").topicArn).toBeNull();
    expect(await auditEntries(t, "&action=provider_events.ses.unsubscribed")).toHaveLength(1);
  });
});
