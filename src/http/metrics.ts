import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LeaseEvent } from '../leases/lease-service.js';

/**
 * The node's Prometheus metrics, in a registry of its own (no global state: several nodes may
 * share a process in tests). Gauges that mirror the store are filled at scrape time.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  private readonly payments = new Counter({
    name: 'alacarte_payments_total',
    help: 'Payments by rail and outcome',
    labelNames: ['rail', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly paymentAmounts = new Counter({
    name: 'alacarte_payment_amount_total',
    help: 'Value of payments presented, by rail and outcome (in the unit of the offer, sat)',
    labelNames: ['rail', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly ended = new Counter({
    name: 'alacarte_leases_ended_total',
    help: 'Leases that ended, by final state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  private readonly startLatency = new Histogram({
    name: 'alacarte_sandbox_start_seconds',
    help: 'Time from asking the driver to start a sandbox until it runs',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  private readonly requestLatency = new Histogram({
    name: 'alacarte_http_request_duration_seconds',
    help: 'HTTP request latency by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  constructor(sources: {
    leasesByState: () => Promise<Record<string, number>>;
    capacity: () => Promise<Map<string, number>>;
  }) {
    new Gauge({
      name: 'alacarte_leases',
      help: 'Leases in the store by state',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        for (const [state, n] of Object.entries(await sources.leasesByState())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'alacarte_capacity',
      help: 'How many more sandboxes of each offer fit right now',
      labelNames: ['offer'] as const,
      registers: [this.registry],
      async collect() {
        for (const [offer, n] of await sources.capacity()) this.set({ offer }, n);
      },
    });
  }

  observe(event: LeaseEvent): void {
    switch (event.type) {
      case 'payment':
        this.payments.inc({ rail: event.rail, outcome: event.outcome });
        this.paymentAmounts.inc({ rail: event.rail, outcome: event.outcome }, Number(event.amount.value));
        break;
      case 'started':
        this.startLatency.observe(event.ms / 1000);
        break;
      case 'ended':
        this.ended.inc({ state: event.state });
        break;
    }
  }

  /** Times every request and serves GET /metrics. */
  install(app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      // The route pattern, never the raw URL: lease ids must not become label values.
      const route = request.routeOptions.url ?? 'unmatched';
      this.requestLatency.observe(
        { method: request.method, route, status: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });
    app.get('/metrics', async (_request, reply) => {
      reply.header('content-type', this.registry.contentType);
      return this.registry.metrics();
    });
  }
}
