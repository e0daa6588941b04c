//! The Parquet form of `--requests-out`: each batch of rows a row group,
//! every column optional (a request without an answer has no status), gzip.
//! The column list below is the file's schema and its writer in one place.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parquet::basic::{Compression, GzipLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::batches::BatchSink;
use super::rows::tpot;
use crate::metrics::Sample;

/// A column's values, read from a row.
enum Col {
    Text(fn(&Sample) -> Option<String>),
    F64(fn(&Sample) -> Option<f64>),
    I32(fn(&Sample) -> Option<i32>),
    Bool(fn(&Sample) -> Option<bool>),
}

/// The columns after `run_id` and `timestamp_us`, in the file's order.
const COLUMNS: &[(&str, Col)] = &[
    ("t_s", Col::F64(|s| Some(s.t_s))),
    ("endpoint", Col::Text(|s| Some(s.endpoint.to_string()))),
    ("stage", Col::I32(|s| Some(s.stage as i32))),
    ("group", Col::Text(|s| s.group.clone())),
    ("adapter", Col::Text(|s| s.adapter.clone())),
    ("status", Col::I32(|s| s.status.map(i32::from))),
    ("ok", Col::Bool(|s| Some(s.ok))),
    (
        "error_class",
        Col::Text(|s| match s.error {
            Some(c) => Some(c.as_str().to_string()),
            None if s.interrupted() => Some("interrupted".to_string()),
            None => None,
        }),
    ),
    ("ttft_ms", Col::F64(|s| s.ttft_ms)),
    ("e2e_ms", Col::F64(|s| Some(s.e2e_ms))),
    ("tpot_ms", Col::F64(tpot)),
    ("latency_ms", Col::F64(|s| s.latency_ms)),
    ("input_tokens", Col::I32(|s| Some(s.input_tokens as i32))),
    ("output_tokens", Col::I32(|s| Some(s.output_tokens as i32))),
    (
        "output_source",
        Col::Text(|s| Some(s.output_source.as_str().to_string())),
    ),
    ("reconnect", Col::Bool(|s| Some(s.reconnect))),
    ("http2", Col::Bool(|s| Some(s.http2))),
    ("server_prompt_ms", Col::F64(|s| s.server_prompt_ms)),
    ("server_decode_ms", Col::F64(|s| s.server_decode_ms)),
    (
        "cached_tokens",
        Col::I32(|s| s.cached_tokens.map(|n| n as i32)),
    ),
    (
        "server_output_tokens",
        Col::I32(|s| s.server_output_tokens.map(|n| n as i32)),
    ),
    ("request_body", Col::Text(|s| s.request_body.clone())),
    ("answer", Col::Text(|s| s.answer.clone())),
];

fn schema() -> String {
    let mut fields = vec![
        "REQUIRED BYTE_ARRAY run_id (UTF8);".to_string(),
        "REQUIRED INT64 timestamp_us (TIMESTAMP(MICROS,true));".to_string(),
    ];
    for (name, col) in COLUMNS {
        fields.push(match col {
            Col::Text(_) => format!("OPTIONAL BYTE_ARRAY {name} (UTF8);"),
            Col::F64(_) => format!("OPTIONAL DOUBLE {name};"),
            Col::I32(_) => format!("OPTIONAL INT32 {name};"),
            Col::Bool(_) => format!("OPTIONAL BOOLEAN {name};"),
        });
    }
    format!("message request {{ {} }}", fields.join(" "))
}

pub(super) struct Parquet {
    writer: SerializedFileWriter<std::fs::File>,
    run_id: ByteArray,
    /// The run's start, µs since the Unix epoch.
    start_us: i64,
}

impl Parquet {
    pub(super) fn new(
        file: std::fs::File,
        run_id: &str,
        start: SystemTime,
    ) -> parquet::errors::Result<Self> {
        let schema = Arc::new(parse_message_type(&schema())?);
        let props = WriterProperties::builder()
            .set_compression(Compression::GZIP(GzipLevel::default()))
            .set_created_by(format!("periscope {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Parquet {
            writer: SerializedFileWriter::new(file, schema, Arc::new(props))?,
            run_id: ByteArray::from(run_id),
            start_us: start
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_micros() as i64,
        })
    }

    fn write_group(&mut self, rows: &[Sample]) -> parquet::errors::Result<()> {
        let mut rg = self.writer.next_row_group()?;
        let mut column = 0usize;
        while let Some(mut w) = rg.next_column()? {
            match column {
                0 => {
                    let v = vec![self.run_id.clone(); rows.len()];
                    w.typed::<ByteArrayType>().write_batch(&v, None, None)?;
                }
                1 => {
                    let v: Vec<i64> = rows
                        .iter()
                        .map(|s| self.start_us + (s.t_s * 1e6).round() as i64)
                        .collect();
                    w.typed::<Int64Type>().write_batch(&v, None, None)?;
                }
                n => match &COLUMNS[n - 2].1 {
                    Col::Text(f) => {
                        let (v, d) =
                            levels(rows, |s| f(s).map(|x| ByteArray::from(x.into_bytes())));
                        w.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)?;
                    }
                    Col::F64(f) => {
                        let (v, d) = levels(rows, f);
                        w.typed::<DoubleType>().write_batch(&v, Some(&d), None)?;
                    }
                    Col::I32(f) => {
                        let (v, d) = levels(rows, f);
                        w.typed::<Int32Type>().write_batch(&v, Some(&d), None)?;
                    }
                    Col::Bool(f) => {
                        let (v, d) = levels(rows, f);
                        w.typed::<BoolType>().write_batch(&v, Some(&d), None)?;
                    }
                },
            }
            w.close()?;
            column += 1;
        }
        rg.close()?;
        Ok(())
    }
}

/// An optional column's values (present ones only) and definition levels.
fn levels<T>(rows: &[Sample], f: impl Fn(&Sample) -> Option<T>) -> (Vec<T>, Vec<i16>) {
    let mut values = Vec::with_capacity(rows.len());
    let mut defs = Vec::with_capacity(rows.len());
    for s in rows {
        match f(s) {
            Some(v) => {
                values.push(v);
                defs.push(1);
            }
            None => defs.push(0),
        }
    }
    (values, defs)
}

impl BatchSink<Vec<Sample>> for Parquet {
    fn write(&mut self, rows: Vec<Sample>) -> Result<(), String> {
        self.write_group(&rows).map_err(|e| e.to_string())
    }

    fn close(self: Box<Self>) -> Result<(), String> {
        self.writer.close().map(|_| ()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ErrorClass, Outcome, RequestRecord};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    #[test]
    fn rows_read_back_with_the_crates_own_reader_column_for_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut w = Parquet::new(std::fs::File::create(&path).unwrap(), "run1", start).unwrap();
        let mut rows = Vec::new();
        for i in 0..3u64 {
            let mut r = RequestRecord::new(i * 1000, i * 1000);
            r.end_us = r.start_us + 100_000;
            r.ttft_us = Some(20_000);
            r.output_tokens = 11;
            r.status = Some(200);
            r.adapter = Some("lora-a".into());
            rows.push(Sample::of(&r, false));
        }
        let mut failed = RequestRecord::new(5000, 5000);
        failed.outcome = Outcome::Error(ErrorClass::Connect);
        rows.push(Sample::of(&failed, false));
        // Two batches: two row groups.
        w.write(rows[..2].to_vec()).unwrap();
        w.write(rows[2..].to_vec()).unwrap();
        Box::new(w).close().unwrap();

        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 2);
        let read: Vec<_> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(read.len(), 4);
        let get = |row: usize, name: &str| -> Field {
            read[row]
                .get_column_iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, f)| f.clone())
                .unwrap()
        };
        assert_eq!(get(0, "run_id"), Field::Str("run1".into()));
        assert_eq!(get(1, "ttft_ms"), Field::Double(20.0));
        assert_eq!(get(1, "e2e_ms"), Field::Double(100.0));
        assert_eq!(get(1, "tpot_ms"), Field::Double(8.0));
        assert_eq!(get(2, "adapter"), Field::Str("lora-a".into()));
        assert_eq!(get(2, "status"), Field::Int(200));
        assert_eq!(get(3, "status"), Field::Null);
        assert_eq!(get(3, "ok"), Field::Bool(false));
        assert_eq!(get(3, "error_class"), Field::Str("connect".into()));
        assert_eq!(
            get(3, "timestamp_us"),
            Field::TimestampMicros(1_700_000_000_000_000 + 5000)
        );
    }
}
