// Money and time as people read them: prices from minor units with each currency's own
// number of decimals (JPY 0, EUR 2, KWD 3), dates in the venue's time zone.

const locale = navigator.language || 'en';

/** `money(12900, 'EUR')` → "€129.00" (in the reader's locale). */
export function money(minor, currency) {
  const format = new Intl.NumberFormat(locale, { style: 'currency', currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

/** A show's start in its venue's zone: "Sat, 12 Dec 2026, 19:00". */
export function when(iso, timeZone) {
  return new Intl.DateTimeFormat(locale, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit', timeZone: timeZone || undefined,
  }).format(new Date(iso));
}

/** A time of day in the reader's zone, for "checked in at 19:04:12". */
export function clock(iso) {
  return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(iso));
}

/** "4:59" for 299 seconds; "0:00" once past. */
export function countdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** "about 3 minutes" for an estimated wait. */
export function duration(seconds) {
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `about ${minutes} minute${minutes === 1 ? '' : 's'}`;
  return `about ${Math.round(minutes / 60)} hours`;
}

/** "1 ticket" / "3 tickets". */
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
