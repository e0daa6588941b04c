// k6/metrics: Trend, Counter, Rate, Gauge, recorded by periscope's collector.
const N = globalThis.__native;

class Metric {
  constructor(name, isTime, kind) {
    if (typeof name !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TypeError("a metric name is letters, digits and _ (got " + JSON.stringify(name) + ")");
    }
    this.name = name;
    this.isTime = !!isTime;
    this.kind = kind;
  }
  add(value, tags) {
    N.metric(this.kind, this.name, Number(value), tags ? JSON.stringify(tags) : "", this.isTime);
  }
}

export class Trend extends Metric {
  constructor(name, isTime) {
    super(name, isTime, "trend");
  }
}
export class Counter extends Metric {
  constructor(name) {
    super(name, false, "counter");
  }
}
export class Rate extends Metric {
  constructor(name) {
    super(name, false, "rate");
  }
}
export class Gauge extends Metric {
  constructor(name, isTime) {
    super(name, isTime, "gauge");
  }
}

export default { Trend, Counter, Rate, Gauge };
