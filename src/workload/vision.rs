//! `vision`: chat (or the Responses API with `--api responses`) with
//! `--images N` pictures of `--image-size WxH` in every request, made here
//! (PNG or JPEG of random pixels), sent as data URLs. Every request's
//! pictures are new, so no cache of the server's (by image hash or by
//! prompt prefix) flatters it. The server counts the pictures' tokens in
//! its usage; the client reports them as what the usage holds beyond the
//! text.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use super::chat::{chat_body, responses_body};
use super::{LlmApi, PromptSource, Session, Turn, Workload, WorkloadSpec};
use crate::client::{Expect, Prepared};
use crate::tokenizer::{self, Tokenizer};

/// How the pictures are encoded (`--image-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Lossless, stored without compression: its size is known exactly
    /// (3 bytes a pixel, 1 a row, and the container's).
    #[default]
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

/// What `vision` sends with every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Images {
    pub count: u32,
    pub width: u32,
    pub height: u32,
    pub format: ImageFormat,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            count: 1,
            width: 512,
            height: 512,
            format: ImageFormat::Png,
        }
    }
}

/// `WxH`, e.g. `512x512`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{s}' is not a size WIDTHxHEIGHT such as 512x512");
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(1..=8192).contains(&w) || !(1..=8192).contains(&h) {
        return Err(format!(
            "an image of {w}x{h}: each side must be 1 to 8192 pixels"
        ));
    }
    Ok((w, h))
}

/// A picture of random pixels, encoded.
pub fn synthetic_image(
    width: u32,
    height: u32,
    format: ImageFormat,
    rng: &mut fastrand::Rng,
) -> Vec<u8> {
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    rng.fill(&mut pixels);
    let mut out = Vec::with_capacity(pixels.len() + pixels.len() / 8 + 1024);
    match format {
        ImageFormat::Png => {
            let mut e = png::Encoder::new(&mut out, width, height);
            e.set_color(png::ColorType::Rgb);
            e.set_depth(png::BitDepth::Eight);
            e.set_compression(png::Compression::NoCompression);
            let mut w = e.write_header().expect("a PNG header in memory");
            w.write_image_data(&pixels)
                .expect("PNG data of the header's size, in memory");
            w.finish().expect("a PNG in memory");
        }
        ImageFormat::Jpeg => {
            let e = jpeg_encoder::Encoder::new(&mut out, 85);
            e.encode(
                &pixels,
                width as u16,
                height as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .expect("a JPEG in memory of at most 8192x8192");
        }
    }
    out
}

pub struct Vision(Arc<Inner>);

struct Inner {
    spec: WorkloadSpec,
    prompts: PromptSource,
    system_tokens: u32,
}

impl Vision {
    pub fn new(spec: &WorkloadSpec, tok: &Tokenizer) -> Self {
        Vision(Arc::new(Inner {
            prompts: PromptSource::new(
                &spec.prompt,
                spec.input_tokens,
                spec.input_tokens_stddev,
                spec.shared_prefix,
                spec.dataset.as_ref(),
                tok,
            ),
            system_tokens: spec.system.as_deref().map_or(0, |s| tok.count_prompt(s)),
            spec: spec.clone(),
        }))
    }
}

impl Inner {
    /// A request; `pictures` false: the text alone (the preflight, which
    /// measures the chat template's tokens: what the usage holds beyond
    /// them and the text are the pictures').
    fn build(
        &self,
        rng: &mut fastrand::Rng,
        max_tokens: u32,
        stream: bool,
        pictures: bool,
    ) -> Prepared {
        let s = &self.spec;
        let mut im = s.images;
        if !pictures {
            im.count = 0;
        }
        let (question, n) = self.prompts.next(rng);
        let urls: Vec<String> = (0..im.count)
            .map(|_| {
                let bytes = synthetic_image(im.width, im.height, im.format, rng);
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                format!("data:{};base64,{b64}", im.format.mime())
            })
            .collect();
        let (path, body, expect) = match s.api {
            LlmApi::Chat => {
                let mut parts = vec![json!({"type": "text", "text": question})];
                parts.extend(
                    urls.into_iter()
                        .map(|u| json!({"type": "image_url", "image_url": {"url": u}})),
                );
                let mut messages = Vec::with_capacity(2);
                if let Some(sys) = &s.system {
                    messages.push(json!({"role": "system", "content": sys}));
                }
                messages.push(json!({"role": "user", "content": parts}));
                let b = chat_body(
                    &s.model,
                    messages,
                    max_tokens,
                    s.temperature,
                    stream,
                    s.stream_usage,
                );
                ("chat/completions", b, Expect::Completion)
            }
            LlmApi::Responses => {
                let mut parts = vec![json!({"type": "input_text", "text": question})];
                parts.extend(
                    urls.into_iter()
                        .map(|u| json!({"type": "input_image", "image_url": u})),
                );
                let input = json!([{"role": "user", "content": parts}]);
                let b = responses_body(s, input, max_tokens, stream);
                ("responses", b, Expect::Responses)
            }
        };
        let mut p = Prepared::post(path, Bytes::from(body.to_string()), expect);
        p.stream = stream;
        p.prompt_tokens = n + self.system_tokens;
        p.framing = tokenizer::chat_framing(1 + s.system.is_some() as u32);
        p.images = im.count;
        p
    }
}

struct VisionSession {
    w: Arc<Inner>,
    rng: fastrand::Rng,
}

impl Session for VisionSession {
    fn next(&mut self, _turn: Turn) -> Option<Prepared> {
        let s = &self.w.spec;
        Some(self.w.build(&mut self.rng, s.max_tokens, s.stream, true))
    }
}

impl Workload for Vision {
    fn name(&self) -> &'static str {
        "vision"
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(VisionSession {
            w: self.0.clone(),
            rng: super::session_rng(vu),
        })
    }

    fn preflight(&self) -> Prepared {
        let least = match self.0.spec.api {
            LlmApi::Chat => 1,
            LlmApi::Responses => 16,
        };
        self.0
            .build(&mut fastrand::Rng::with_seed(0), least, false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn request(api: LlmApi, images: Images) -> (Prepared, Value) {
        let mut spec = super::super::chat::tests::spec("vision");
        spec.api = api;
        spec.images = images;
        let w = Vision::new(&spec, &tokenizer::default_tokenizer());
        let p = w
            .session(0)
            .next(Turn {
                vu: 0,
                iteration: 0,
                stage: 0,
            })
            .unwrap();
        let v = serde_json::from_slice(&p.body).unwrap();
        (p, v)
    }

    fn decoded(url: &str) -> Vec<u8> {
        let b64 = url.split_once(";base64,").unwrap().1;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn every_picture_is_new_and_of_the_size_asked() {
        let im = Images {
            count: 2,
            width: 64,
            height: 32,
            format: ImageFormat::Png,
        };
        let (p, v) = request(LlmApi::Chat, im);
        assert_eq!(p.images, 2);
        let parts = v["messages"][1]["content"].as_array().unwrap();
        assert_eq!(parts[0]["type"], "text");
        let a = decoded(parts[1]["image_url"]["url"].as_str().unwrap());
        let b = decoded(parts[2]["image_url"]["url"].as_str().unwrap());
        assert_ne!(a, b);
        assert_eq!(&a[1..4], b"PNG");
        // IHDR: width and height, big-endian, at bytes 16 and 20.
        assert_eq!(u32::from_be_bytes(a[16..20].try_into().unwrap()), 64);
        assert_eq!(u32::from_be_bytes(a[20..24].try_into().unwrap()), 32);
        // Stored, not compressed: 3 bytes a pixel and a filter byte a row,
        // in one deflate block (5 bytes), inside zlib (6) and chunks (57).
        assert_eq!(a.len(), 64 * 32 * 3 + 32 + 5 + 6 + 57);
    }

    #[test]
    fn no_two_requests_carry_the_same_bytes_and_sizes_grow_as_png_predicts() {
        let mut spec = super::super::chat::tests::spec("vision");
        let w = Vision::new(&spec, &tokenizer::default_tokenizer());
        let t = Turn {
            vu: 0,
            iteration: 0,
            stage: 0,
        };
        let picture = |p: &Prepared| {
            let v: Value = serde_json::from_slice(&p.body).unwrap();
            decoded(
                v["messages"][1]["content"][1]["image_url"]["url"]
                    .as_str()
                    .unwrap(),
            )
        };
        let (mut a, mut b) = (w.session(0), w.session(1));
        let seen = [a.next(t), a.next(t), b.next(t), b.next(t)].map(|p| picture(&p.unwrap()));
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(seen[i], seen[j], "requests {i} and {j}");
            }
        }
        // The body grows by the base64 of 3 bytes a pixel and 1 a row.
        let mut len = |w: u32, h: u32| {
            spec.images = Images {
                count: 1,
                width: w,
                height: h,
                format: ImageFormat::Png,
            };
            let v = Vision::new(&spec, &tokenizer::default_tokenizer());
            v.session(0).next(t).unwrap().body.len() as i64
        };
        let png = |w: i64, h: i64| 3 * w * h + h + 5 * ((3 * w * h + h + 65_534) / 65_535) + 6 + 57;
        let b64 = |n: i64| 4 * ((n + 2) / 3);
        for (w, h) in [(256, 256), (512, 384), (1024, 1024)] {
            assert_eq!(
                len(w as u32, h as u32) - len(16, 16),
                b64(png(w, h)) - b64(png(16, 16)),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn jpeg_and_the_responses_api() {
        let im = Images {
            count: 1,
            width: 40,
            height: 30,
            format: ImageFormat::Jpeg,
        };
        let (p, v) = request(LlmApi::Responses, im);
        assert_eq!(p.path, "responses");
        let part = &v["input"][0]["content"][1];
        assert_eq!(part["type"], "input_image");
        let url = part["image_url"].as_str().unwrap();
        assert!(url.starts_with("data:image/jpeg;base64,"));
        assert_eq!(&decoded(url)[..2], [0xFF, 0xD8]);
    }

    #[test]
    fn sizes_are_read_and_checked() {
        assert_eq!(parse_size("640x480"), Ok((640, 480)));
        assert!(parse_size("640").is_err());
        assert!(parse_size("0x10").unwrap_err().contains("1 to 8192"));
    }
}
