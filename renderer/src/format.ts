import type { TFunction } from 'i18next';

/*
 * Dates, times, numbers and sizes in the window's locale (Intl), so "14:32" and "1 234" read as
 * people write them in each language.
 */
export interface Formats {
  locale: string;
  /** "14:32" today, else "26 Nov, 14:32" */
  time(iso: string, now?: number): string;
  /** "26 Nov 2026, 14:32" */
  dateTime(iso: string): string;
  number(n: number): string;
  /** "4.2 kB" with the locale's decimal mark */
  bytes(n: number): string;
  /** "0.4 seconds", "12 seconds": how long something took */
  seconds(n: number): string;
  /** "5 minutes", "2 hours", "1 day" (the largest whole unit that fits) */
  duration(seconds: number): string;
  /** "3 hours ago", "in 10 minutes" */
  relative(iso: string, now?: number): string;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export function formats(locale: string, t: TFunction): Formats {
  const hm = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' });
  const dayHm = new Intl.DateTimeFormat(locale, {
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
  });
  const full = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
  const num = new Intl.NumberFormat(locale);
  const oneDecimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
  const rel = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' });
  const unit = (u: 'second' | 'minute' | 'hour' | 'day', n: number) =>
    new Intl.NumberFormat(locale, { style: 'unit', unit: u, unitDisplay: 'long' }).format(n);

  return {
    locale,
    time(iso, now = Date.now()) {
      const d = new Date(iso);
      const today = new Date(now);
      return d.toDateString() === today.toDateString() ? hm.format(d) : dayHm.format(d);
    },
    dateTime: (iso) => full.format(new Date(iso)),
    number: (n) => num.format(n),
    bytes(n) {
      if (n < 1000) return t('units.B', { n: num.format(n) });
      if (n < 1e6) return t('units.kB', { n: oneDecimal.format(n / 1e3) });
      if (n < 1e9) return t('units.MB', { n: oneDecimal.format(n / 1e6) });
      return t('units.GB', { n: oneDecimal.format(n / 1e9) });
    },
    seconds: (n) =>
      new Intl.NumberFormat(locale, {
        style: 'unit',
        unit: 'second',
        unitDisplay: 'long',
        maximumFractionDigits: n < 10 ? 1 : 0,
      }).format(n),
    duration(seconds) {
      const ms = Math.max(0, Math.round(seconds)) * SECOND;
      if (ms >= DAY && ms % DAY === 0) return unit('day', ms / DAY);
      if (ms >= HOUR && ms % HOUR === 0) return unit('hour', ms / HOUR);
      if (ms >= 2 * HOUR) return unit('hour', Math.round(ms / HOUR));
      if (ms >= MINUTE) return unit('minute', Math.round(ms / MINUTE));
      return unit('second', ms / SECOND);
    },
    relative(iso, now = Date.now()) {
      const diff = Date.parse(iso) - now;
      const abs = Math.abs(diff);
      if (abs < MINUTE) return rel.format(Math.round(diff / SECOND), 'second');
      if (abs < HOUR) return rel.format(Math.round(diff / MINUTE), 'minute');
      if (abs < DAY) return rel.format(Math.round(diff / HOUR), 'hour');
      return rel.format(Math.round(diff / DAY), 'day');
    },
  };
}
