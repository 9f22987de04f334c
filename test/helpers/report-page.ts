// Reading a lazy-load report page back (as rendered, or as a browser dumped its DOM): its chart
// series and the numbers it carries.

/** The series the page draws, each one polyline or path marked data-series. */
export const REPORT_SERIES = ['demand', 'readahead', 'prefetch', 'hot', 'hits', 'misses', 'file-size', 'file-touched', 'file-fetched', 'optimized-bytes'];

/** data-series → its point list (a polyline's points, a path's d). */
export function seriesIn(html: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const m of html.matchAll(/<(?:polyline|path) data-series="([^"]*)"[^>]*?\s(?:points|d)="([^"]*)"/g)) found.set(m[1]!, m[2]!);
  return found;
}

/** The ReportData in the page's report-data block. */
export function embeddedData(html: string): unknown {
  const m = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html);
  if (!m) throw new Error('the page has no report-data block');
  return JSON.parse(m[1]!);
}
