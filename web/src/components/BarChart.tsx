/** A stacked bar chart in SVG: sent below, failed on top, one bar per hour or day. */
import { useEffect, useRef, useState } from "react";

export interface Bucket {
  label: string;
  /** Longer text for the tooltip and the table, e.g. "14:00–15:00". */
  title: string;
  sent: number;
  failed: number;
}

const HEIGHT = 180;
const PAD = { top: 10, right: 20, bottom: 24, left: 36 };

/** A round top for the axis that halves into whole numbers (0, half, top). */
function niceMax(value: number): number {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 6, 8, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

export function BarChart({
  buckets,
  label,
  labelEvery,
  scaleTo = 0,
}: {
  buckets: Bucket[];
  label: string;
  labelEvery: number;
  /** The largest bar of every chart shown together, so that they share one scale. */
  scaleTo?: number;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.max(240, Math.floor(entry.contentRect.width))));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  const max = niceMax(Math.max(scaleTo, ...buckets.map((b) => b.sent + b.failed)));
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, slot * 0.7);
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const ticks = [0, max / 2, max];
  // Fewer labels when the bars are narrow, so they never overlap; the newest bar always has one.
  const every = Math.max(labelEvery, Math.ceil(44 / slot));

  return (
    <div ref={ref} className="chart">
      <svg width={width} height={HEIGHT} role="img" aria-label={label} className="chart-svg">
        {ticks.map((t) => (
          <g key={t}>
            <line x1={PAD.left} x2={width - PAD.right} y1={y(t)} y2={y(t)} className="gridline" />
            <text x={PAD.left - 6} y={y(t) + 4} textAnchor="end" className="axis-label">
              {Number.isInteger(t) ? t : t.toFixed(1)}
            </text>
          </g>
        ))}
        {buckets.map((b, i) => {
          const x = PAD.left + i * slot + (slot - barW) / 2;
          const sentTop = y(b.sent);
          const failedTop = y(b.sent + b.failed);
          return (
            <g key={b.title}>
              <title>{`${b.title}: ${b.sent} sent, ${b.failed} failed`}</title>
              {/* A full-height transparent target, so a hover anywhere in the slot shows the numbers. */}
              <rect x={PAD.left + i * slot} y={PAD.top} width={slot} height={plotH} fill="transparent" />
              {b.sent > 0 && <rect x={x} y={sentTop} width={barW} height={PAD.top + plotH - sentTop} className="bar-sent" />}
              {b.failed > 0 && <rect x={x} y={failedTop} width={barW} height={sentTop - failedTop} className="bar-failed" />}
              {(buckets.length - 1 - i) % every === 0 && (
                <text x={PAD.left + i * slot + slot / 2} y={HEIGHT - 6} textAnchor="middle" className="axis-label">
                  {b.label}
                </text>
              )}
            </g>
          );
        })}
        <line x1={PAD.left} x2={width - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} className="axis" />
      </svg>
    </div>
  );
}
