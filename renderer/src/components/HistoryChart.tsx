import { useTranslation } from 'react-i18next';
import type { ApiExchange } from '../../../src/api/types.js';
import { useFormats } from '../context.js';

const WIDTH = 600;
const HEIGHT = 140;
const PAD_LEFT = 44;
const PAD_BOTTOM = 18;
const MOST = 24;

/**
 * Records sent and received per exchange (plain SVG, no chart library): a bar pair per
 * exchange, oldest on the left; a failed exchange is a red mark on the baseline.
 */
export function HistoryChart({ history }: { history: ApiExchange[] }) {
  const { t } = useTranslation();
  const f = useFormats();
  const shown = history.slice(0, MOST).reverse();
  if (!shown.length) return null;
  const max = Math.max(1, ...shown.map((h) => Math.max(h.sent, h.received)));
  const plotW = WIDTH - PAD_LEFT - 8;
  const plotH = HEIGHT - PAD_BOTTOM - 10;
  // A few exchanges get wide bars; many share the width.
  const slot = plotW / Math.max(shown.length, 10);
  const bar = Math.max(3, slot / 2 - 3);
  const y = (n: number) => 10 + plotH - (n / max) * plotH;
  return (
    <figure className="chart">
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="img"
        aria-label={t('status.chartTitle')}
        preserveAspectRatio="xMinYMin meet"
      >
        <line x1={PAD_LEFT} x2={WIDTH - 8} y1={y(0)} y2={y(0)} className="axis" />
        <line x1={PAD_LEFT} x2={WIDTH - 8} y1={y(max)} y2={y(max)} className="grid" />
        <text x={PAD_LEFT - 6} y={y(max) + 4} textAnchor="end" className="tick">
          {f.number(max)}
        </text>
        <text x={PAD_LEFT - 6} y={y(0) + 4} textAnchor="end" className="tick">
          0
        </text>
        {shown.map((h, i) => {
          const x = PAD_LEFT + i * slot + 2;
          const label = `${f.time(h.startedAt)}: ${h.sent} ${t('status.chartSent')}, ${h.received} ${t('status.chartReceived')}${h.ok ? '' : `, ${t('status.chartFailed')}`}`;
          return (
            <g key={`${h.startedAt}-${i}`}>
              <title>{label}</title>
              {h.ok ? (
                <>
                  <rect
                    x={x}
                    y={y(h.sent)}
                    width={bar}
                    height={Math.max(h.sent ? 1 : 0, y(0) - y(h.sent))}
                    className="bar-sent"
                  />
                  <rect
                    x={x + bar + 1}
                    y={y(h.received)}
                    width={bar}
                    height={Math.max(h.received ? 1 : 0, y(0) - y(h.received))}
                    className="bar-received"
                  />
                </>
              ) : (
                <rect x={x} y={y(0) - 6} width={bar * 2 + 1} height={6} className="bar-failed" />
              )}
            </g>
          );
        })}
        <text x={PAD_LEFT} y={HEIGHT - 3} className="tick">
          {f.time(shown[0]!.startedAt)}
        </text>
        <text x={WIDTH - 8} y={HEIGHT - 3} textAnchor="end" className="tick">
          {f.time(shown.at(-1)!.startedAt)}
        </text>
      </svg>
      <figcaption>
        <span className="legend legend-sent">{t('status.chartSent')}</span>
        <span className="legend legend-received">{t('status.chartReceived')}</span>
        <span className="legend legend-failed">{t('status.chartFailed')}</span>
        <span className="chart-title">{t('status.chartTitle')}</span>
      </figcaption>
    </figure>
  );
}
