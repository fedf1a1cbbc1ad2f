/**
 * Prometheus text exposition (format 0.0.4) of the service's counters, written by hand:
 * four metric families do not need a client library.
 */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export class Metrics {
  private readonly requests = new Map<string, { labels: Record<string, string>; n: number }>();
  private readonly errors = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private readonly started = Date.now();

  constructor(
    private readonly gauges: {
      queueDepth: () => number;
      queueMax: () => number;
      workerRestarts?: () => number;
      batches?: () => { runs: number; predictions: number };
    },
  ) {}

  /** One finished request: its route pattern, method, status and seconds. */
  observe(route: string, method: string, status: number, seconds: number): void {
    const labels = { route, method, status: String(status) };
    const key = labelText(labels);
    const r = this.requests.get(key) ?? { labels, n: 0 };
    r.n++;
    this.requests.set(key, r);
    let h = this.latency.get(route);
    if (!h) {
      h = { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(route, h);
    }
    LATENCY_BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.counts[i]++;
    });
    h.sum += seconds;
    h.count++;
  }

  /** One error answer, by its code (queue_full, invalid_audio, ...). */
  error(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  render(): string {
    const out: string[] = [];
    out.push('# HELP lemer_http_requests_total HTTP requests answered, by route, method and status.');
    out.push('# TYPE lemer_http_requests_total counter');
    for (const r of this.requests.values())
      out.push(`lemer_http_requests_total${labelText(r.labels)} ${r.n}`);
    out.push('# HELP lemer_http_request_duration_seconds Time from request to response, by route.');
    out.push('# TYPE lemer_http_request_duration_seconds histogram');
    for (const [route, h] of this.latency) {
      LATENCY_BUCKETS.forEach((b, i) =>
        out.push(
          `lemer_http_request_duration_seconds_bucket${labelText({ route, le: String(b) })} ${h.counts[i]}`,
        ),
      );
      out.push(`lemer_http_request_duration_seconds_bucket${labelText({ route, le: '+Inf' })} ${h.count}`);
      out.push(`lemer_http_request_duration_seconds_sum${labelText({ route })} ${h.sum}`);
      out.push(`lemer_http_request_duration_seconds_count${labelText({ route })} ${h.count}`);
    }
    out.push('# HELP lemer_errors_total Error answers, by error code.');
    out.push('# TYPE lemer_errors_total counter');
    for (const [code, n] of this.errors) out.push(`lemer_errors_total${labelText({ code })} ${n}`);
    out.push('# HELP lemer_queue_depth Predictions running or waiting.');
    out.push('# TYPE lemer_queue_depth gauge');
    out.push(`lemer_queue_depth ${this.gauges.queueDepth()}`);
    out.push('# HELP lemer_queue_capacity Predictions the queue holds before answering 503.');
    out.push('# TYPE lemer_queue_capacity gauge');
    out.push(`lemer_queue_capacity ${this.gauges.queueMax()}`);
    out.push('# HELP lemer_worker_restarts_total Inference workers started again after a crash.');
    out.push('# TYPE lemer_worker_restarts_total counter');
    out.push(`lemer_worker_restarts_total ${this.gauges.workerRestarts?.() ?? 0}`);
    const b = this.gauges.batches?.() ?? { runs: 0, predictions: 0 };
    out.push(
      '# HELP lemer_batches_total Model runs of the inference worker (requests waiting are run together).',
    );
    out.push('# TYPE lemer_batches_total counter');
    out.push(`lemer_batches_total ${b.runs}`);
    out.push(
      '# HELP lemer_batched_predictions_total Predictions those runs held (over lemer_batches_total: the mean batch size).',
    );
    out.push('# TYPE lemer_batched_predictions_total counter');
    out.push(`lemer_batched_predictions_total ${b.predictions}`);
    out.push('# HELP lemer_uptime_seconds Seconds since the server started.');
    out.push('# TYPE lemer_uptime_seconds gauge');
    out.push(`lemer_uptime_seconds ${(Date.now() - this.started) / 1000}`);
    return out.join('\n') + '\n';
  }
}
