/**
 * A captured message as its recipient would see it. The HTML goes into an iframe with an
 * empty sandbox: no scripts, no forms, no navigation, an origin of its own; the page's
 * Content-Security-Policy (inherited by srcdoc) also keeps remote images from loading, and
 * the preview says so when the message has some.
 */
import { type KeyboardEvent, useMemo, useState } from "react";
import type { CapturedMessage } from "../api";
import { formatAddress, formatBytes, Time } from "./ui";

/** The source view shows this much; the rest of a large message is left out. */
const RAW_LIMIT = 200_000;

type Tab = "html" | "text" | "source-html" | "headers" | "attachments" | "raw";

/** Remote images the HTML asks for (img src/srcset, CSS url(...)): the preview blocks them all. */
export function remoteImages(html: string | null): number {
  if (!html) return 0;
  // An inert document: parsing runs no script and loads nothing.
  const doc = new DOMParser().parseFromString(html, "text/html");
  const remote = /^(https?:)?\/\//i;
  let count = 0;
  for (const img of Array.from(doc.querySelectorAll("img, source, input[type=image]"))) {
    const src = img.getAttribute("src") ?? "";
    const srcset = img.getAttribute("srcset") ?? "";
    if (remote.test(src.trim()) || srcset.split(",").some((c) => remote.test(c.trim()))) count++;
  }
  for (const el of Array.from(doc.querySelectorAll("[background], [style], style"))) {
    const text = `${el.getAttribute("background") ?? ""} ${el.getAttribute("style") ?? ""} ${el.tagName === "STYLE" ? el.textContent : ""}`;
    count += (text.match(/url\(\s*['"]?(https?:)?\/\//gi) ?? []).length;
    if (remote.test((el.getAttribute("background") ?? "").trim())) count++;
  }
  return count;
}

/** The day of an ISO time, as the delivery log's "removed by retention on …" gives it. */
export function dayOf(isoTime: string): string {
  return isoTime.slice(0, 10);
}

export function CapturePreview({
  message,
  downloadBase,
}: {
  message: CapturedMessage;
  /** The captured message's API path, when its attachments can be downloaded. */
  downloadBase?: string;
}) {
  const p = message.parsed;
  const blocked = useMemo(() => remoteImages(p.html), [p.html]);
  const tabs: { id: Tab; label: string; show: boolean }[] = [
    { id: "html", label: "HTML", show: p.html !== null },
    { id: "text", label: "Text", show: true },
    { id: "source-html", label: "HTML source", show: p.html !== null },
    { id: "headers", label: `Headers (${p.headers.length})`, show: true },
    { id: "attachments", label: `Attachments (${p.attachments.length})`, show: true },
    { id: "raw", label: "Source", show: true },
  ];
  const [tab, setTab] = useState<Tab>(p.html !== null ? "html" : "text");
  const visible = tabs.filter((t) => t.show);

  const onKey = (event: KeyboardEvent, index: number) => {
    const next = event.key === "ArrowRight" ? index + 1 : event.key === "ArrowLeft" ? index - 1 : null;
    if (next === null) return;
    event.preventDefault();
    const target = visible[(next + visible.length) % visible.length];
    setTab(target.id);
    document.getElementById(`preview-tab-${target.id}`)?.focus();
  };

  return (
    <section className="panel preview" aria-labelledby="preview-heading">
      <h2 id="preview-heading">Preview</h2>
      <dl className="facts">
        <dt>Subject</dt>
        <dd>{p.subject || "(no subject)"}</dd>
        <dt>From</dt>
        <dd>{formatAddress(p.from)}</dd>
        <dt>To</dt>
        <dd className="break">{p.to.map(formatAddress).join(", ") || "—"}</dd>
        {p.cc.length > 0 && (
          <>
            <dt>Cc</dt>
            <dd className="break">{p.cc.map(formatAddress).join(", ")}</dd>
          </>
        )}
        <dt>Captured</dt>
        <dd>
          <Time value={message.capturedAt} /> · {formatBytes(message.size)}
        </dd>
      </dl>
      <div role="tablist" aria-label="Message parts" className="tablist">
        {visible.map((t, i) => (
          <button
            key={t.id}
            id={`preview-tab-${t.id}`}
            type="button"
            role="tab"
            aria-selected={tab === t.id}
            aria-controls={`preview-panel-${t.id}`}
            tabIndex={tab === t.id ? 0 : -1}
            onClick={() => setTab(t.id)}
            onKeyDown={(e) => onKey(e, i)}
          >
            {t.label}
          </button>
        ))}
      </div>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a tab panel takes focus (ARIA practices), so its text can be scrolled by keyboard */}
      <div role="tabpanel" id={`preview-panel-${tab}`} aria-labelledby={`preview-tab-${tab}`} className="tabpanel" tabIndex={0}>
        {tab === "html" && p.html !== null && (
          <>
            {blocked > 0 && (
              <p className="blocked-images" role="note">
                {blocked === 1 ? "1 remote image is" : `${blocked} remote images are`} not shown: the preview loads nothing from
                other sites, so opening a message never tells a sender it was read.
              </p>
            )}
            <iframe title={`HTML of “${p.subject || "the message"}”`} sandbox="" srcDoc={p.html} className="html-preview" />
          </>
        )}
        {tab === "source-html" && p.html !== null && <pre className="message-text raw">{p.html}</pre>}
        {tab === "text" && (
          <pre className="message-text">
            {p.text ??
              (message.bodyRemovedAt
                ? `Removed by retention on ${dayOf(message.bodyRemovedAt)}.`
                : "This message has no text part.")}
          </pre>
        )}
        {tab === "headers" && (
          <table className="table headers">
            <caption className="visually-hidden">Headers</caption>
            <thead>
              <tr>
                <th scope="col">Header</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {p.headers.map((h, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: headers repeat (Received) and never reorder
                <tr key={`${h.key}-${i}`}>
                  <th scope="row">{h.key}</th>
                  <td className="break">{h.value}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {tab === "attachments" &&
          (p.attachments.length === 0 ? (
            <p className="muted">No attachments.</p>
          ) : (
            <ul className="attachments">
              {p.attachments.map((a, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: attachments may share a name and never reorder
                <li key={`${a.filename}-${i}`}>
                  {downloadBase ? (
                    <a href={`${downloadBase}/attachments/${i}`} download={a.filename ?? `attachment-${i}`}>
                      <strong>{a.filename ?? "(no name)"}</strong>
                      <span className="visually-hidden"> (download)</span>
                    </a>
                  ) : (
                    <strong>{a.filename ?? "(no name)"}</strong>
                  )}{" "}
                  <span className="muted">{a.contentType}</span> · {formatBytes(a.size)}
                  {a.contentId && <span className="muted"> · inline (cid:{a.contentId})</span>}
                </li>
              ))}
            </ul>
          ))}
        {tab === "raw" && (
          <pre className="message-text raw">
            {message.raw.length > RAW_LIMIT
              ? `${message.raw.slice(0, RAW_LIMIT)}\n… (${formatBytes(message.raw.length - RAW_LIMIT)} more not shown)`
              : message.raw}
          </pre>
        )}
      </div>
    </section>
  );
}
