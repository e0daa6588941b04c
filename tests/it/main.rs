//! The integration tests, in one binary: they run periscope's own binary
//! against the mock and real servers (llama.cpp's server with a real model,
//! the LiteLLM proxy, InfluxDB, VictoriaMetrics, nginx, Arize Phoenix, the
//! official OpenAI client). One binary links once and
//! compiles the shared helpers once; nextest still runs every test in its
//! own process (`make test`).

mod common;

mod compression;
mod csv_rows;
mod dashboard;
mod faults;
mod find_and_hold;
mod http2;
mod influx;
mod k8s;
mod make;
mod mock;
mod openai_sdk;
mod otlp;
mod otlp_grpc;
mod otlp_queries;
mod phoenix;
mod presets;
mod prometheus;
mod proxy;
mod real;
mod reconnects;
mod replay;
mod reports;
mod requests_out;
mod run;
mod runs;
mod scenarios;
mod scripts;
mod seeds;
mod segments;
mod series;
mod server_metrics;
mod server_side;
mod sessions;
mod snapshots;
mod soak;
mod steady;
mod structure;
mod sweep;
mod timing;
mod vllm_format;
mod workloads;
