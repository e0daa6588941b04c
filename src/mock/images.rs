//! Pictures in requests, as the mock counts them: a data URL's PNG or JPEG
//! is read for its size, and costs tokens as OpenAI's vision models count
//! tiles (85 + 170 per 512-pixel tile, without their downscaling). The
//! pictures' tokens are part of the prompt's in the usage, as servers
//! report them.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A content part that may be a picture: chat's `image_url: {url}` or the
/// Responses API's `image_url: "…"`.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    image_url: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Url<'a> {
    #[serde(borrow)]
    url: &'a str,
}

/// Tokens of the pictures among a message's content parts (`content` as
/// sent); 0 for a string or parts without pictures. `Err` for a picture
/// that is not a readable PNG or JPEG data URL.
pub fn tokens(content: &RawValue) -> Result<u32, String> {
    let json = content.get();
    if !json.starts_with('[') || !json.contains("image_url") {
        return Ok(0);
    }
    let parts: Vec<Part<'_>> = serde_json::from_str(json).unwrap_or_default();
    let mut total = 0;
    for raw in parts.iter().filter_map(|p| p.image_url) {
        let url = match serde_json::from_str::<Url<'_>>(raw.get()) {
            Ok(u) => u.url,
            Err(_) => serde_json::from_str::<&str>(raw.get())
                .map_err(|_| "'image_url' must be a URL or {\"url\": URL}".to_string())?,
        };
        let (w, h) = size(url)?;
        total += 85 + 170 * w.div_ceil(512) * h.div_ceil(512);
    }
    Ok(total)
}

/// The width and height of a data URL's picture.
fn size(url: &str) -> Result<(u32, u32), String> {
    let b64 = url
        .strip_prefix("data:")
        .and_then(|u| u.split_once(";base64,"))
        .map(|(_, b)| b)
        .ok_or("the mock reads pictures sent as base64 data URLs only")?;
    // The header is at the start: decode just enough of it (JPEG's frame
    // header may come after its tables: up to 64 KiB).
    let head = &b64[..b64.len().min(87_384) & !3];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(head)
        .map_err(|e| format!("a picture's base64 is broken: {e}"))?;
    if bytes.len() >= 24 && bytes.starts_with(b"\x89PNG") {
        let be =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        return Ok((be(16), be(20)));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // Segments until a start of frame (SOF0..SOF15 but DHT, JPG, DAC).
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                break;
            }
            let marker = bytes[i + 1];
            let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
                let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]) as u32;
                let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]) as u32;
                return Ok((w, h));
            }
            i += 2 + len;
        }
    }
    Err("a picture that is neither PNG nor JPEG".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{synthetic_image, ImageFormat};

    fn url(format: ImageFormat, w: u32, h: u32) -> String {
        let b = synthetic_image(w, h, format, &mut fastrand::Rng::with_seed(1));
        let b64 = base64::engine::general_purpose::STANDARD.encode(b);
        format!("data:{};base64,{b64}", format.mime())
    }

    #[test]
    fn pictures_cost_tokens_by_their_tiles() {
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            assert_eq!(size(&url(format, 700, 300)).unwrap(), (700, 300));
        }
        let content = serde_json::json!([
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": url(ImageFormat::Png, 512, 512)}},
            {"type": "input_image", "image_url": url(ImageFormat::Jpeg, 1024, 513)},
        ])
        .to_string();
        let raw: Box<RawValue> = serde_json::from_str(&content).unwrap();
        assert_eq!(tokens(&raw).unwrap(), (85 + 170) + (85 + 170 * 4));
        let raw: Box<RawValue> = serde_json::from_str("\"just text\"").unwrap();
        assert_eq!(tokens(&raw).unwrap(), 0);
        assert!(size("https://example.com/cat.png").is_err());
        assert!(size("data:image/png;base64,AAAA").is_err());
    }
}
